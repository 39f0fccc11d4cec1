"""Start, find and stop the local stack's background process.

The process records itself in ``<state dir>/local.json``; it is "running" only when that pid
is alive *and* its health URL answers, so a crashed or killed process is noticed and a new
one replaces it. Starting and stopping hold ``<state dir>/local.lock`` (an advisory lock the
kernel drops when its holder dies), so two imgup commands that both find no stack running
start one: the second waits for the first and then reuses its stack. Nothing here prints:
callers get ``LocalStack`` records and errors.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.error import URLError
from urllib.request import urlopen

from ..config import local_state_dir
from ..errors import ImgupError
from . import HEALTH_PATH, LOG_FILE, STATE_FILE

START_TIMEOUT = 60.0
STOP_TIMEOUT = 10.0
LOCK_FILE = "local.lock"
DEPLOY_LOCK_FILE = "deploy.lock"
# Whoever holds the lock is done within one start (or one stop that escalates to SIGKILL).
LOCK_TIMEOUT = START_TIMEOUT + 2 * STOP_TIMEOUT + 10.0
DEPLOY_LOCK_TIMEOUT = 300.0  # a local deploy waits at most 120 s for its stack


@dataclass(frozen=True)
class LocalStack:
    pid: int
    port: int
    endpoint_url: str
    log_file: Path


class LocalStackError(ImgupError):
    pass


# The processes this process started: their exit status is read through Popen, so that a
# long-lived caller (a test session) neither leaves zombies nor trips Popen's warning.
_started: dict[int, subprocess.Popen[bytes]] = {}


def _pid_alive(pid: int) -> bool:
    if pid in _started:
        return _started[pid].poll() is None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie child of ours is dead too
        done, _ = os.waitpid(pid, os.WNOHANG)
        return done == 0
    except ChildProcessError:
        return not _zombie(pid)


def _zombie(pid: int) -> bool:
    """Whether a process that is not our child has ended and waits to be reaped by its
    parent (init, for a stack whose starter has exited): some inits reap only now and then,
    and ``imgup local stop`` would wait for that."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return False  # no /proc (macOS): alive until it is gone
    return stat.rpartition(")")[2].split()[:1] == ["Z"]


def _healthy(endpoint_url: str, timeout: float = 2.0) -> bool:
    try:
        with urlopen(endpoint_url + HEALTH_PATH, timeout=timeout) as answer:  # noqa: S310
            return answer.status == 200
    except (URLError, OSError, ValueError):
        return False


def _read_state(state_dir: Path) -> LocalStack | None:
    try:
        data = json.loads((state_dir / STATE_FILE).read_text(encoding="utf-8"))
        return LocalStack(
            pid=int(data["pid"]),
            port=int(data["port"]),
            endpoint_url=str(data["endpointUrl"]),
            log_file=state_dir / LOG_FILE,
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


@contextlib.contextmanager
def _exclusive(
    state_dir: Path, name: str = LOCK_FILE, timeout: float = LOCK_TIMEOUT, doing: str = "starting or stopping"
) -> Iterator[None]:
    """Hold one of the state directory's locks, waiting at most ``timeout`` for it."""
    state_dir.mkdir(parents=True, exist_ok=True)
    path = state_dir / name
    with open(path, "a", encoding="utf-8") as handle:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise LocalStackError(
                        f"Another imgup command has been {doing} the local stack for {timeout:.0f} s.",
                        f"Check `imgup local status`, or wait and try again (the lock is {path}).",
                    ) from None
                time.sleep(0.05)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextlib.contextmanager
def deploying(state_dir: Path | None = None, timeout: float = DEPLOY_LOCK_TIMEOUT) -> Iterator[None]:
    """Held by `imgup deploy --local` from starting the stack to saving the deployment, so
    that concurrent local deploys run one after the other: the second finds the stack that
    the first created (up to date) instead of racing it to create the same one."""
    with _exclusive(state_dir or local_state_dir(), DEPLOY_LOCK_FILE, timeout, "deploying to"):
        yield


def status(state_dir: Path | None = None) -> LocalStack | None:
    """The running local stack, or None; a stale record of a dead one is removed."""
    state_dir = state_dir or local_state_dir()
    found = _read_state(state_dir)
    if found is None:
        return None
    if _pid_alive(found.pid) and _healthy(found.endpoint_url):
        return found
    if not _pid_alive(found.pid):
        (state_dir / STATE_FILE).unlink(missing_ok=True)
    return None


def server_command(state_dir: Path) -> list[str]:
    """The command line of the background process.

    ``-P`` (Python 3.11+) keeps the working directory off ``sys.path``: ``python -m`` puts
    it first, so a folder ``imgup/local`` there (``~/.config`` holds imgup's own
    ``imgup/local``) would shadow an editable install's package and the process would not
    start. The process also runs in its state directory, so nothing of the caller's folder
    can reach it.
    """
    return [sys.executable, "-P", "-m", "imgup.local.server", "--state-dir", str(state_dir.resolve())]


def start(state_dir: Path | None = None) -> tuple[LocalStack, bool]:
    """Return the running local stack, starting one if needed; True when it was started.

    Concurrent callers (other imgup processes too) get the same stack: one starts it, the
    others wait for it and find it running."""
    state_dir = state_dir or local_state_dir()
    with _exclusive(state_dir):
        return _start(state_dir)


def _start(state_dir: Path) -> tuple[LocalStack, bool]:
    running = status(state_dir)
    if running:
        return running, False
    stale = _read_state(state_dir)
    if stale is not None:  # alive but not answering: replace it
        _terminate(stale.pid)
        (state_dir / STATE_FILE).unlink(missing_ok=True)
    log_path = state_dir / LOG_FILE
    with open(log_path, "ab") as log_handle:
        process = subprocess.Popen(
            server_command(state_dir),
            cwd=state_dir,
            stdin=subprocess.DEVNULL,
            stdout=log_handle,
            stderr=log_handle,
            start_new_session=True,
            close_fds=True,
        )
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise LocalStackError(
                f"The local stack exited at start (code {process.returncode}).",
                f"See its log: {log_path}",
            )
        found = _read_state(state_dir)
        if found and found.pid == process.pid and _healthy(found.endpoint_url):
            _started[process.pid] = process
            return found, True
        time.sleep(0.1)
    _started[process.pid] = process
    _terminate(process.pid)
    raise LocalStackError(
        f"The local stack did not answer within {START_TIMEOUT:.0f} s.", f"See its log: {log_path}"
    )


def _terminate(pid: int) -> None:
    for sig, wait in ((signal.SIGTERM, STOP_TIMEOUT), (signal.SIGKILL, 5.0)):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if not _pid_alive(pid):
                return
            time.sleep(0.05)


def stop(state_dir: Path | None = None) -> bool:
    """Stop the local stack; False when none was running."""
    state_dir = state_dir or local_state_dir()
    if not state_dir.is_dir():
        return False
    with _exclusive(state_dir):
        return _stop(state_dir)


def _stop(state_dir: Path) -> bool:
    found = _read_state(state_dir)
    if found is None:
        return False
    alive = _pid_alive(found.pid)
    if alive:
        _terminate(found.pid)
    (state_dir / STATE_FILE).unlink(missing_ok=True)
    return alive
