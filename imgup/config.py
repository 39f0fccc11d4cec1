"""Settings and the record of what is deployed.

Precedence, resolved in ``load_settings`` and nowhere else:
command-line flag > ``IMGUP_*`` environment variable > config file > default.

Files live in the config directory: ``$IMGUP_CONFIG_DIR``, else ``$XDG_CONFIG_HOME/imgup``,
else ``~/.config/imgup`` (``%APPDATA%\\imgup`` on Windows):

- ``config.json``: optional user settings, e.g. ``{"stack_name": "gallery", "concurrency": 8}``
- ``deployment.json``: what ``imgup deploy`` created (no secret in it)
- ``api-key``: the API key, mode 0600
- ``local/``: the local stack's state file and log

AWS credentials and region stay with boto3's own chain (``--profile``, ``AWS_PROFILE``,
``AWS_REGION``...); imgup only passes the flags on.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, overload

from .errors import NotDeployed, UsageError

DEFAULT_STACK_NAME = "imgup"
LOCAL_REGION = "us-east-1"
# The image bucket is named "<stack>-<account>-<region>" (see infra.yaml), so the stack name
# must be a valid bucket-name prefix: lowercase, digits and hyphens, short enough for 63 chars.
STACK_NAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,28}[a-z0-9]$")


@dataclass(frozen=True)
class Settings:
    stack_name: str = DEFAULT_STACK_NAME
    region: str | None = None
    profile: str | None = None
    concurrency: int = 4
    retries: int = 4
    timeout: float = 30.0


def config_dir() -> Path:
    explicit = os.environ.get("IMGUP_CONFIG_DIR")
    if explicit:
        return Path(explicit).expanduser()
    if sys.platform == "win32" and os.environ.get("APPDATA"):
        return Path(os.environ["APPDATA"]) / "imgup"
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "imgup"


def local_state_dir() -> Path:
    return config_dir() / "local"


# Numeric settings and the smallest value each accepts; the rest are strings.
_NUMERIC: dict[str, tuple[type, float]] = {
    "concurrency": (int, 1),
    "retries": (int, 0),
    "timeout": (float, 0.1),
}


def _coerce(name: str, raw: Any, source: str) -> Any:
    if name == "stack_name":
        check_stack_name(str(raw), source)
    if name not in _NUMERIC:
        return str(raw)
    kind, minimum = _NUMERIC[name]
    bad = UsageError(
        f"{source} sets {name} to {raw!r}, which is not a valid {kind.__name__}.",
        f"Give {name} a {kind.__name__} value of at least {minimum:g}.",
    )
    # A JSON true is not a count, and 2.5 workers is not 2: refuse rather than truncate.
    if isinstance(raw, bool) or (kind is int and isinstance(raw, float) and not raw.is_integer()):
        raise bad
    try:
        value = kind(raw)
    except (TypeError, ValueError, OverflowError):
        raise bad from None
    if not math.isfinite(value):
        raise bad
    if value < minimum:
        raise UsageError(f"{source} sets {name} to {raw!r}; it must be at least {minimum:g}.")
    return value


def read_config_file() -> dict[str, Any]:
    path = config_dir() / "config.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise UsageError(
            f"Cannot read the config file {path}: {exc}.",
            "Fix the JSON in it, or delete it to use the defaults.",
        ) from None
    if not isinstance(data, dict):
        raise UsageError(f"The config file {path} must hold a JSON object.")
    return data


def load_settings(**flags: Any) -> Settings:
    """Resolve every setting: flag > IMGUP_* environment > config file > default."""
    file_values = read_config_file()
    resolved: dict[str, Any] = {}
    for field in dataclasses.fields(Settings):
        env_name = "IMGUP_" + field.name.upper()
        if flags.get(field.name) is not None:
            resolved[field.name] = _coerce(field.name, flags[field.name], "--" + field.name.replace("_", "-"))
        elif os.environ.get(env_name):
            resolved[field.name] = _coerce(field.name, os.environ[env_name], env_name)
        elif file_values.get(field.name) is not None:
            resolved[field.name] = _coerce(
                field.name, file_values[field.name], str(config_dir() / "config.json")
            )
    return Settings(**resolved)


def check_stack_name(name: str, source: str | None = None) -> None:
    if not STACK_NAME_RE.match(name) or "--" in name:
        raise UsageError(
            f"Invalid stack name {name!r}" + (f" (from {source})." if source else "."),
            "Use 2 to 30 lowercase letters, digits and single hyphens, starting with a letter "
            "(it becomes part of the bucket name).",
        )


@dataclass
class Deployment:
    """What ``imgup deploy`` created, as stored in deployment.json."""

    target: str  # "local" or "aws"
    stack_name: str
    region: str
    api_url: str
    api_id: str
    bucket: str
    table: str
    artifacts_bucket: str
    max_upload_bytes: int
    profile: str | None = None
    endpoint_url: str | None = None
    api_key_id: str | None = None
    stack_status: str | None = None
    deployed_at: str | None = None

    @property
    def is_local(self) -> bool:
        return self.target == "local"


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def save_deployment(deployment: Deployment, api_key: str) -> None:
    directory = config_dir()
    _write_private(directory / "api-key", api_key + "\n")
    _write_private(
        directory / "deployment.json",
        json.dumps(dataclasses.asdict(deployment), indent=2, sort_keys=True) + "\n",
    )


@overload
def load_deployment(required: Literal[True] = True) -> Deployment: ...


@overload
def load_deployment(required: bool) -> Deployment | None: ...


def load_deployment(required: bool = True) -> Deployment | None:
    """The recorded deployment; NotDeployed when there is none (None if not ``required``)."""
    path = config_dir() / "deployment.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return Deployment(**data)
    except FileNotFoundError:
        if required:
            raise NotDeployed() from None
        return None
    except (OSError, ValueError, TypeError) as exc:
        raise NotDeployed(
            f"The deployment record {path} is unreadable ({exc}).",
            "Run `imgup deploy` again to rewrite it.",
        ) from None


def load_api_key() -> str:
    path = config_dir() / "api-key"
    try:
        key = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        raise NotDeployed(
            f"The API key file {path} is missing.", "Run `imgup deploy` again to restore it."
        ) from None
    if not key:
        raise NotDeployed(f"The API key file {path} is empty.", "Run `imgup deploy` again.")
    return key


def forget_deployment() -> None:
    for name in ("deployment.json", "api-key"):
        try:
            (config_dir() / name).unlink()
        except FileNotFoundError:
            pass
