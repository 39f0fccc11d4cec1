"""The local stack's process as a user meets it: started from any folder, by several imgup
commands at once, and fed requests that no honest client sends."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.conftest import IMGUP, Run
from tests.isolation import isolated_env

pytestmark = pytest.mark.e2e


def run_in(folder: Path, config_dir: Path, *args: str, timeout: float = 180) -> Run:
    """The installed ``imgup`` command run with ``folder`` as its working directory."""
    completed = subprocess.run(
        [IMGUP, *args],
        cwd=folder,
        input="",
        capture_output=True,
        text=True,
        timeout=timeout,
        env=isolated_env(config_dir),
    )
    return Run(completed.returncode, completed.stdout, completed.stderr)


def local_state(config_dir: Path) -> dict | None:
    try:
        return json.loads((config_dir / "local" / "local.json").read_text())
    except FileNotFoundError:
        return None


def test_deploy_local_starts_the_stack_from_a_folder_holding_imgup_local(tmp_path: Path) -> None:
    # The ~/.config case: imgup's own config lives in ./imgup/local of the working directory,
    # and `python -m` would put that directory first on the server's sys.path.
    home = tmp_path / "dot-config"
    (home / "imgup" / "local").mkdir(parents=True)
    (home / "imgup" / "__init__.py").write_text("raise ImportError('the folder, not the package')\n")
    config_dir = home / "imgup"
    try:
        deployed = run_in(home, config_dir, "deploy", "--local")
        assert deployed.code == 0, deployed.stderr
        assert "No module named" not in deployed.stderr
        listed = run_in(home, config_dir, "list", "--json")
        assert listed.code == 0, listed.stderr
        assert json.loads(listed.stdout) == []
    finally:
        run_in(home, config_dir, "local", "stop")


def test_the_local_stack_starts_from_a_relative_config_dir(tmp_path: Path) -> None:
    env_dir = Path("relative-config")
    (tmp_path / env_dir).mkdir()
    try:
        started = run_in(tmp_path, env_dir, "local", "start")
        assert started.code == 0, started.stderr
        state = local_state(tmp_path / env_dir)
        assert state and state["endpointUrl"] == started.stdout.strip()
        assert run_in(tmp_path, env_dir, "local", "status").code == 0
    finally:
        run_in(tmp_path, env_dir, "local", "stop")
