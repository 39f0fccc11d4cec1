"""Shared fixtures: isolation from the user's AWS and imgup config, sample images, a moto
server on 127.0.0.1, and the real ``imgup`` command run as a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings as hypothesis_settings

from tests import tiers
from tests.isolation import CLEAN_ENV, DROPPED
from tests.samples import write_samples

IMGUP = str(Path(sys.executable).with_name("imgup"))

# The machines are shared and noisy: a property holds or not whatever an example's run time,
# so no per-example deadline (it would only make CI flaky).
hypothesis_settings.register_profile("imgup", deadline=None, print_blob=True)
hypothesis_settings.load_profile("imgup")


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test: fake AWS credentials, no AWS profile, imgup's config in a temp dir."""
    for name in DROPPED:
        monkeypatch.delenv(name, raising=False)
    for name, value in CLEAN_ENV.items():
        monkeypatch.setenv(name, value)
    config = tmp_path / "imgup-config"
    monkeypatch.setenv("IMGUP_CONFIG_DIR", str(config))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    return config


@pytest.fixture
def samples(tmp_path: Path) -> dict[str, Path]:
    directory = tmp_path / "pictures"
    directory.mkdir()
    return write_samples(directory)


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """A moto server on 127.0.0.1 and an ephemeral port, for the whole session."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str

    def json(self) -> object:
        return json.loads(self.stdout)

    def json_lines(self) -> list[dict]:
        return [json.loads(line) for line in self.stdout.splitlines() if line.strip()]


def run_imgup(*args: str, stdin: str | None = None, timeout: float = 180, env: dict | None = None) -> Run:
    """The installed ``imgup`` command, in a subprocess, with this test's environment."""
    completed = subprocess.run(
        [IMGUP, *args],
        input=stdin if stdin is not None else "",
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )
    return Run(completed.returncode, completed.stdout, completed.stderr)


@pytest.fixture
def imgup():
    return run_imgup


@dataclass
class LocalDeployment:
    config_dir: Path
    api_url: str
    api_key: str
    endpoint_url: str
    bucket: str
    table: str

    @property
    def env(self) -> dict[str, str]:
        return {"IMGUP_CONFIG_DIR": str(self.config_dir)}

    def imgup(self, *args: str, **kwargs) -> Run:
        return run_imgup(*args, env={**self.env, **kwargs.pop("env", {})}, **kwargs)


@pytest.fixture(scope="module")
def local_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalDeployment]:
    """One ``imgup deploy --local`` for a whole test module, in its own config dir; torn
    down with ``imgup cleanup --yes`` after the module."""
    config_dir = tmp_path_factory.mktemp("local-stack-config")
    env = {**CLEAN_ENV, "IMGUP_CONFIG_DIR": str(config_dir)}
    try:
        deployed = run_imgup("deploy", "--local", env=env)
        assert deployed.code == 0, deployed.stderr
        status = run_imgup("status", "--json", "--show-key", env=env)
        assert status.code == 0, status.stderr
        info = status.json()
        yield LocalDeployment(
            config_dir, info["apiUrl"], info["apiKey"], info["endpointUrl"], info["bucket"], info["table"]
        )
    finally:
        run_imgup("cleanup", "--yes", env=env)
        run_imgup("local", "stop", env=env)


# --- the tiers' reports, from this process or from pytest-xdist workers --------------------
# pyproject.toml runs the suite in 3 processes with --dist loadfile: a file's tests stay in
# one worker, so its module fixtures (a deployed local stack, mostly) are made once.


def pytest_sessionfinish(session: pytest.Session) -> None:
    output = getattr(session.config, "workeroutput", None)
    if output is not None:  # a pytest-xdist worker: its tiers' lines go to the controller
        output["tier_sections"] = json.dumps(tiers.SECTIONS)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: object, error: object) -> None:
    sent = getattr(node, "workeroutput", {}).get("tier_sections")
    for title, lines in json.loads(sent or "{}").items():
        tiers.section(title).extend(lines)


def pytest_terminal_summary(terminalreporter: object, exitstatus: int, config: pytest.Config) -> None:
    reporter: Any = terminalreporter
    for title, lines in tiers.SECTIONS.items():
        if not lines:
            continue
        reporter.write_sep("-", title)
        for line in dict.fromkeys(lines):
            # A skipped or failed tier must be impossible to miss.
            skipped, failed = "skipped" in line, "FAILED" in line
            reporter.write_line(line, yellow=skipped, red=failed, bold=skipped or failed)
