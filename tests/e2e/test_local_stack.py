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


def servers_of(config_dir: Path) -> list[int]:
    """Pids of the local-stack processes serving ``config_dir``."""
    state_dir = str((config_dir / "local").resolve())
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"imgup.local.server" in argv and state_dir.encode() in argv:
            found.append(int(entry.name))
    return found


def run_together(config_dir: Path, *args: str, copies: int = 2) -> list[Run]:
    """``copies`` imgup commands started at once; their results once all have ended."""
    env = isolated_env(config_dir)
    processes = [
        subprocess.Popen(
            [IMGUP, *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(copies)
    ]
    runs = []
    for process in processes:
        out, err = process.communicate(timeout=240)
        runs.append(Run(process.returncode, out, err))
    return runs


def test_two_local_starts_at_once_share_one_stack(tmp_path: Path) -> None:
    config_dir = tmp_path / "cfg"
    try:
        first, second = run_together(config_dir, "local", "start")
        assert (first.code, second.code) == (0, 0), first.stderr + second.stderr
        assert first.stdout == second.stdout  # the same endpoint
        said = sorted(run.stderr.split(" at ")[0] for run in (first, second))
        assert said == ["Local stack already running", "Local stack started"]
        state = local_state(config_dir)
        assert state and servers_of(config_dir) == [state["pid"]]
    finally:
        run_in(tmp_path, config_dir, "local", "stop")
    assert servers_of(config_dir) == []


def test_two_local_deploys_at_once_both_succeed_on_one_stack(tmp_path: Path) -> None:
    config_dir = tmp_path / "cfg"
    try:
        runs = run_together(config_dir, "deploy", "--local", "--json")
        assert [run.code for run in runs] == [0, 0], [run.stderr for run in runs]
        infos = [json.loads(run.stdout) for run in runs]
        assert infos[0]["apiUrl"] == infos[1]["apiUrl"]
        assert sum("Creating stack" in run.stderr for run in runs) == 1
        state = local_state(config_dir)
        assert state and servers_of(config_dir) == [state["pid"]]
        listed = run_in(tmp_path, config_dir, "list", "--json")
        assert listed.code == 0, listed.stderr
    finally:
        run_in(tmp_path, config_dir, "local", "stop")
