"""Every deployment imgup made, remembered by target, region and stack name, and the rule that
selects the one a command acts on.

On disk, under the config directory (``imgup.config.config_dir``)::

    deployments/<target>_<region>_<stack>/deployment.json   what deploy created (no secret)
    deployments/<target>_<region>_<stack>/api-key           its API key, mode 0600

The directory name is the identity (no stack name, region or target holds ``_``), so a record
that cannot be read still has a name, and does not hide the others. Earlier versions kept a
single deployment in ``deployment.json`` and ``api-key`` at the top of the config directory;
those are moved into this layout the first time the registry is read.

Selection, the same for every command (``select``): the settings that name a deployment
(stack name, region, target: each from a flag, ``IMGUP_*`` or config.json) keep only the
deployments that match all of them. When the stack name was not given and several remain,
those named ``imgup`` (the default stack name, the one ``imgup deploy`` creates) are kept.
One left: selected. None: ``NotDeployed``. Several: a ``UsageError`` that lists them with the
options that select each.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path

from .config import (
    DEFAULT_STACK_NAME,
    LOCAL_REGION,
    REGION_RE,
    STACK_NAME_RE,
    TARGETS,
    Deployment,
    Settings,
    config_dir,
    config_dir_source,
    read_api_key,
    read_record,
    write_private,
)
from .errors import NotDeployed, UsageError

RECORD = "deployment.json"
KEY = "api-key"
# What selects a deployment, in the order options are suggested.
CRITERIA = ("stack_name", "region", "target")


@dataclass(frozen=True, order=True)
class DeploymentId:
    """What tells deployments apart: ordered by stack name, then region, then target."""

    stack_name: str
    region: str
    target: str

    @classmethod
    def of(cls, deployment: Deployment) -> DeploymentId:
        return cls(deployment.stack_name, deployment.region, deployment.target)

    @classmethod
    def parse(cls, dirname: str) -> DeploymentId | None:
        parts = dirname.split("_")
        if len(parts) != 3:
            return None
        target, region, stack_name = parts
        if target in TARGETS and REGION_RE.match(region) and STACK_NAME_RE.match(stack_name):
            return cls(stack_name, region, target)
        return None

    @property
    def dirname(self) -> str:
        return f"{self.target}_{self.region}_{self.stack_name}"

    def __str__(self) -> str:
        return f"{self.stack_name} ({self.target}, {self.region})"

    def deploy_command(self, profile: str | None = None) -> str:
        """The ``imgup deploy`` command that (re)creates this deployment."""
        args = ["imgup", "deploy"]
        if self.target == "local":
            args.append("--local")
        if self.stack_name != DEFAULT_STACK_NAME:
            args += ["--stack-name", self.stack_name]
        if self.target != "local" or self.region != LOCAL_REGION:
            args += ["--region", self.region]
        if profile:
            args += ["--profile", profile]
        return " ".join(args)


def options_for(criteria: dict[str, str]) -> list[str]:
    """Command-line options that give these criteria, e.g. ["--stack-name", "x", "--local"]."""
    args: list[str] = []
    for name in CRITERIA:
        if name not in criteria:
            continue
        if name == "target":
            args.append("--" + criteria[name])
        else:
            args += ["--" + name.replace("_", "-"), criteria[name]]
    return args


def matching(ids: Iterable[DeploymentId], criteria: dict[str, str]) -> list[DeploymentId]:
    """The selection rule (see the module's docstring), before counting what is left."""
    found = [i for i in ids if all(getattr(i, name) == value for name, value in criteria.items())]
    if "stack_name" not in criteria and len(found) > 1:
        default = [i for i in found if i.stack_name == DEFAULT_STACK_NAME]
        found = default or found
    return sorted(found)


def selecting_options(wanted: DeploymentId, ids: list[DeploymentId], given: dict[str, str]) -> list[str]:
    """The fewest options that, with the criteria already ``given``, select ``wanted``."""
    for size in range(len(CRITERIA) + 1):
        for names in combinations(CRITERIA, size):
            extra = {name: getattr(wanted, name) for name in names}
            if matching(ids, {**given, **extra}) == [wanted]:
                return options_for(extra)
    return options_for({name: getattr(wanted, name) for name in CRITERIA})


def criteria_of(settings: Settings) -> dict[str, str]:
    """The settings that select a deployment, as far as they were given (not defaults)."""
    return {name: getattr(settings, name) for name in CRITERIA if settings.given(name)}


def describe_criteria(settings: Settings) -> str:
    parts = []
    for name, value in criteria_of(settings).items():
        source = settings.sources[name]
        if source.startswith("--"):
            parts.append(f"--{value}" if name == "target" else f"{source} {value}")
        elif source.startswith("IMGUP_"):
            parts.append(f"{source}={value}")
        else:
            parts.append(f'"{name}": "{value}" in {source}')
    return ", ".join(parts)


class Registry:
    """The deployments remembered in one config directory."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = root if root is not None else config_dir()
        self.directory = self.root / "deployments"

    # --- where things are ------------------------------------------------------------------

    def record_path(self, which: DeploymentId) -> Path:
        return self.directory / which.dirname / RECORD

    def key_path(self, which: DeploymentId) -> Path:
        return self.directory / which.dirname / KEY

    # --- reading ---------------------------------------------------------------------------

    def ids(self) -> list[DeploymentId]:
        """Every remembered deployment, sorted; an older single deployment is moved in first."""
        self._adopt_legacy()
        try:
            entries = list(self.directory.iterdir())
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise UsageError(
                f"Cannot read {self.directory}: {exc.strerror or exc}.",
                f"Check {config_dir_source()} {self.root}, or set IMGUP_CONFIG_DIR to another directory.",
            ) from None
        found = []
        for entry in entries:
            which = DeploymentId.parse(entry.name)
            if which is not None and (entry / RECORD).is_file():
                found.append(which)
        return sorted(found)

    def load(self, which: DeploymentId) -> Deployment:
        """The record of ``which``, checked (a UsageError names the file, the field, the fix)."""
        path = self.record_path(which)
        try:
            deployment = read_record(path)
        except FileNotFoundError:
            raise NotDeployed(f"Deployment {which} is no longer remembered.") from None
        except UsageError as exc:
            raise UsageError(
                exc.message,
                f"Run `{which.deploy_command()}` to rewrite it, or delete {path.parent} to forget it.",
            ) from None
        if DeploymentId.of(deployment) != which:
            raise UsageError(
                f"The deployment record {path} describes {DeploymentId.of(deployment)}, "
                f"but is filed as {which}.",
                "Delete its directory to forget it, then run `imgup deploy` again.",
            )
        return deployment

    def api_key(self, which: DeploymentId) -> str:
        return read_api_key(self.key_path(which))

    def select(self, settings: Settings) -> DeploymentId:
        """The deployment the settings select (see the module docstring for the rule)."""
        ids = self.ids()
        if not ids:
            raise NotDeployed()
        given = criteria_of(settings)
        found = matching(ids, given)
        if len(found) == 1:
            return found[0]
        remembered = ", ".join(map(str, ids))
        if not found:
            deploy = ["imgup", "deploy", *options_for(given)]
            raise NotDeployed(
                f"No remembered deployment matches {describe_criteria(settings)}; "
                f"imgup remembers {remembered}.",
                f"Select one of those (`imgup status` lists them), or deploy it: `{' '.join(deploy)}`.",
            )
        choices = [f"{' '.join(selecting_options(i, ids, given))} for {i}" for i in found]
        raise UsageError(
            f"{len(found)} remembered deployments match, and nothing selects one of them: "
            f"{', '.join(map(str, found))}.",
            f"Add {', or '.join(choices)}.",
        )

    # --- writing ---------------------------------------------------------------------------

    def prepare(self, which: DeploymentId) -> None:
        """Make sure ``which`` can be recorded, before deploy creates anything."""
        self._adopt_legacy()
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            probe, name = tempfile.mkstemp(dir=self.directory, prefix=".write-test.")
            os.close(probe)
            os.unlink(name)
        except OSError as exc:
            raise UsageError(
                f"Cannot write to {config_dir_source()} {self.root}: {exc.strerror or exc}.",
                "Point IMGUP_CONFIG_DIR at a directory you can write to.",
            ) from None
        for path in (self.record_path(which), self.key_path(which)):
            if path.is_dir():
                raise UsageError(
                    f"{path} is a directory, where imgup keeps a file.",
                    "Remove it, then run the command again.",
                )

    def save(self, deployment: Deployment, api_key: str) -> DeploymentId:
        which = DeploymentId.of(deployment)
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        # The key first: a record is what makes a deployment remembered, and it never lacks a key.
        write_private(self.key_path(which), api_key + "\n")
        write_private(
            self.record_path(which),
            json.dumps(dataclasses.asdict(deployment), indent=2, sort_keys=True) + "\n",
        )
        return which

    def forget(self, which: DeploymentId) -> None:
        folder = self.directory / which.dirname
        for name in (RECORD, KEY):  # the record first: without it, the rest is not a deployment
            try:
                (folder / name).unlink()
            except FileNotFoundError:
                pass
        try:
            folder.rmdir()
        except OSError:
            pass  # not empty (someone's file) or already gone: harmless

    def _adopt_legacy(self) -> None:
        """Move the single deployment of an earlier version into the registry's layout."""
        legacy = self.root / RECORD
        if not legacy.is_file():
            return
        try:
            deployment = read_record(legacy)
        except FileNotFoundError:
            return  # another imgup moved it meanwhile
        folder = self.directory / DeploymentId.of(deployment).dirname
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        for name in (KEY, RECORD):  # the key first, as in save()
            try:
                os.replace(self.root / name, folder / name)
            except FileNotFoundError:
                pass  # another imgup moved it meanwhile, or there was no key
