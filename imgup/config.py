"""Settings, and the record of one deployment.

Precedence, resolved in ``load_settings`` and nowhere else:
command-line flag > ``IMGUP_*`` environment variable > config file > default.

Files live in the config directory: ``$IMGUP_CONFIG_DIR``, else ``$XDG_CONFIG_HOME/imgup``,
else ``~/.config/imgup`` (``%APPDATA%\\imgup`` on Windows):

- ``config.json``: optional user settings, e.g. ``{"stack_name": "gallery", "concurrency": 8}``
- ``deployments/``: every deployment imgup made, with its API key (``imgup.deployments``)
- ``local/``: the local stack's state file and log

AWS credentials stay with boto3's own chain (``--profile``, ``AWS_PROFILE``...); imgup only
passes the flags on.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import stat
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import UsageError

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
    # Parallel uploads: enough to hide each request's latency (aws s3 cp sends 10 at once).
    # On the local stack, which the machine's CPU bounds, -j 1 to 32 measure within noise of
    # each other (bench/README.md).
    concurrency: int = 16
    retries: int = 4
    timeout: float = 30.0
    target: str | None = None  # "local" or "aws": which deployment to use, or where to deploy
    # Where each value that is not a default came from: "--region", "IMGUP_REGION", or the
    # config file's path. Error messages name it; selection tells "given" from "default".
    sources: dict[str, str] = field(default_factory=dict, compare=False, repr=False)

    def given(self, name: str) -> bool:
        return name in self.sources


SETTING_NAMES = ("stack_name", "region", "profile", "concurrency", "retries", "timeout", "target")
TARGETS = ("local", "aws")


def config_dir() -> Path:
    explicit = os.environ.get("IMGUP_CONFIG_DIR")
    if explicit:
        return Path(explicit).expanduser()
    if sys.platform == "win32" and os.environ.get("APPDATA"):
        return Path(os.environ["APPDATA"]) / "imgup"
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "imgup"


def config_dir_source() -> str:
    return "IMGUP_CONFIG_DIR" if os.environ.get("IMGUP_CONFIG_DIR") else "the config directory"


def local_state_dir() -> Path:
    return config_dir() / "local"


# Numeric settings: their type and the range they accept (beyond it, a value is a mistake:
# 10**6 workers or a timeout of 1e308 seconds would only fail later, less clearly).
_NUMERIC: dict[str, tuple[type, float, float]] = {
    "concurrency": (int, 1, 64),
    "retries": (int, 0, 10),
    "timeout": (float, 0.1, 3600),
}
# AWS region names, e.g. us-east-1, ap-southeast-2, us-gov-west-1, eusc-de-east-1.
REGION_RE = re.compile(r"^[a-z]{2,4}(-[a-z]+)+-\d{1,2}$")


def number(name: str, raw: Any, source: str, kind: type, minimum: float, maximum: float) -> Any:
    """``raw`` as an int or float within [minimum, maximum]; a UsageError naming ``source``."""
    wanted = f"{'a whole number' if kind is int else 'a number'} from {minimum:g} to {maximum:g}"
    bad = UsageError(f"{source} sets {name} to {raw!r}; it must be {wanted}.", f"Give {name} {wanted}.")
    # A JSON true is not a count, and 2.5 workers is not 2: refuse rather than truncate.
    if isinstance(raw, bool) or (kind is int and isinstance(raw, float) and not raw.is_integer()):
        raise bad
    try:
        value = kind(raw)
    except (TypeError, ValueError, OverflowError):
        raise bad from None
    if not math.isfinite(value) or not minimum <= value <= maximum:
        raise bad
    return value


def _coerce(name: str, raw: Any, source: str) -> Any:
    if name in _NUMERIC:
        return number(name, raw, source, *_NUMERIC[name])
    value = str(raw)
    if name == "stack_name":
        check_stack_name(value, source)
    elif name == "region":
        check_region_name(value, source)
    elif name == "target" and value not in TARGETS:
        raise UsageError(f"{source} sets target to {raw!r}; it must be local or aws.")
    elif not value.strip() or not value.isprintable():
        raise UsageError(f"{source} sets {name} to {raw!r}, which is not a usable {name}.")
    return value


EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def check_alert_email(address: str) -> None:
    if not EMAIL_RE.match(address):
        raise UsageError(
            f"--alert-email {address!r} is not an e-mail address.",
            "Give an address such as ops@example.com, or leave the option out.",
        )


def check_region_name(region: str, source: str) -> None:
    if not REGION_RE.match(region):
        raise UsageError(
            f"{source} sets the region to {region!r}, which is not an AWS region name.",
            "Give a region such as us-east-1 or eu-west-1 (`aws ec2 describe-regions` lists them).",
        )


def read_config_file() -> dict[str, Any]:
    """config.json's settings, checked: a JSON object of known settings with JSON types."""
    path = config_dir() / "config.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise UsageError(
            f"Cannot read the config file {path}: {exc.strerror or exc}.",
            f"Check {config_dir_source()} {path.parent}, or set IMGUP_CONFIG_DIR to another directory.",
        ) from None
    except ValueError as exc:
        raise UsageError(
            f"Cannot read the config file {path}: {exc}.",
            "Fix the JSON in it, or delete it to use the defaults.",
        ) from None
    if not isinstance(data, dict):
        raise UsageError(
            f'The config file {path} must hold a JSON object, such as {{"stack_name": "gallery"}}.'
        )
    unknown = sorted(set(data) - set(SETTING_NAMES))
    if unknown:
        raise UsageError(
            f"The config file {path} has unknown setting{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(map(repr, unknown))}.",
            f"Known settings: {', '.join(SETTING_NAMES)} (see README.md, Configuration).",
        )
    for name, value in data.items():
        if name not in _NUMERIC and value is not None and not isinstance(value, str):
            raise UsageError(
                f"The config file {path} sets {name} to {value!r}; it must be a JSON string.",
                f'Write it in quotes, e.g. "{name}": "{value}".',
            )
    return data


def load_settings(**flags: Any) -> Settings:
    """Resolve every setting: flag > IMGUP_* environment > config file > default."""
    file_values = read_config_file()
    resolved: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for name in SETTING_NAMES:
        env_name = "IMGUP_" + name.upper()
        if flags.get(name) is not None:
            raw = flags[name]
            source = f"--{raw}" if name == "target" else "--" + name.replace("_", "-")
        elif os.environ.get(env_name):
            source, raw = env_name, os.environ[env_name]
        elif file_values.get(name) is not None:
            source, raw = str(config_dir() / "config.json"), file_values[name]
        else:
            continue
        resolved[name] = _coerce(name, raw, source)
        sources[name] = source
    return Settings(**resolved, sources=sources)


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
    account: str | None = None  # the AWS account (None in records of earlier versions)

    @property
    def is_local(self) -> bool:
        return self.target == "local"

    @classmethod
    def from_record(cls, data: Any, path: Path) -> Deployment:
        """A deployment from its JSON record, every field checked; a UsageError naming the
        file, the field and the fix otherwise. Fields this version does not know are ignored
        (a newer imgup may have written them)."""

        def bad(problem: str) -> UsageError:
            return UsageError(
                f"The deployment record {path} is invalid: {problem}.",
                "Run `imgup deploy` again to rewrite it, or delete the file to forget that deployment.",
            )

        if not isinstance(data, dict):
            raise bad(f"it holds {type(data).__name__}, not a JSON object")
        values: dict[str, Any] = {}
        for spec in dataclasses.fields(cls):
            value = data.get(spec.name)
            required = spec.default is dataclasses.MISSING
            if value is None:
                if required:
                    raise bad(f"{spec.name} is missing")
                continue
            if spec.name == "max_upload_bytes":
                if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                    raise bad(f"{spec.name} must be a positive whole number, not {value!r}")
            elif not isinstance(value, str) or (required and not value):
                raise bad(f"{spec.name} must be a{' non-empty' if required else ''} string, not {value!r}")
            values[spec.name] = value
        if values["target"] not in TARGETS:
            raise bad(f"target must be one of {', '.join(TARGETS)}, not {values['target']!r}")
        if not STACK_NAME_RE.match(values["stack_name"]):
            raise bad(f"stack_name {values['stack_name']!r} is not a valid stack name")
        if not REGION_RE.match(values["region"]):
            raise bad(f"region {values['region']!r} is not an AWS region name")
        for name in ("api_url", "endpoint_url"):
            if name in values and not re.match(r"^https?://[^\s/]+", values[name]):
                raise bad(f"{name} {values[name]!r} is not an http(s) URL")
        if values["target"] == "local" and "endpoint_url" not in values:
            raise bad("a local deployment needs its endpoint_url")
        return cls(**values)


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically, readable by the owner only (mode 0600)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")  # mode 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_record(path: Path) -> Deployment:
    """The deployment recorded in ``path``; FileNotFoundError when there is none."""
    try:
        text = path.read_bytes().decode("utf-8")
        data = json.loads(text)
    except FileNotFoundError:
        raise
    except (OSError, ValueError) as exc:  # UnicodeDecodeError is a ValueError
        problem = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise UsageError(
            f"The deployment record {path} is unreadable: {problem}.",
            "Run `imgup deploy` again to rewrite it, or delete the file to forget that deployment.",
        ) from None
    return Deployment.from_record(data, path)


# An API Gateway key: printable ASCII, no spaces (it travels in an HTTP header).
API_KEY_RE = re.compile(r"^[!-~]{1,1024}$")


def read_api_key(path: Path) -> str:
    """The API key in ``path``, checked; a UsageError that names the file and the fix."""
    restore = "Run `imgup deploy` again (with the same target) to restore it from the stack."
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise UsageError(f"The API key file {path} is missing.", restore) from None
    except IsADirectoryError:
        raise UsageError(
            f"The API key file {path} is a directory, not a file.",
            "Remove it, then run `imgup deploy` again to restore the key from the stack.",
        ) from None
    except OSError as exc:
        raise UsageError(f"Cannot read the API key file {path}: {exc.strerror or exc}.", restore) from None
    try:
        key = raw.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise UsageError(f"The API key file {path} is not UTF-8 text.", restore) from None
    if not key:
        raise UsageError(f"The API key file {path} is empty.", restore)
    if not API_KEY_RE.match(key):
        raise UsageError(
            f"The API key file {path} does not hold an API key (one line of printable ASCII).", restore
        )
    return key


def key_file_warning(path: Path) -> str | None:
    """A warning when others may read or change the API key file, with the fix."""
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError:
        return None
    if sys.platform == "win32" or not mode & 0o077:
        return None
    return f"the API key file {path} is open to other users (mode {mode:04o}); run: chmod 600 {path}"
