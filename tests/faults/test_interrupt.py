"""Ctrl-C during ``imgup upload``: exit 130, say so, and leave nothing listed that is not complete.

The real command runs in a subprocess of its own session, through a fault proxy that reads
the PUTs slowly (with a small receive buffer, so the client really waits on them). One small
file completes first; SIGINT goes to the child's pid while two big ones stream and a third
waits in the queue.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import CLEAN_ENV, DROPPED, IMGUP
from tests.faults.faultproxy import Consistency, FaultPlan, FaultProxy, Slow, iter_lines, proxied_config
from tests.samples import png_bytes

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

# Loopback send buffers grow to a few MiB: a smaller body is handed to the kernel at once, and
# then even a killed client delivers all of it. These bodies are still streaming at Ctrl-C.
BIG = 4608 * 1024
RATE = 512 * 1024  # bytes/s the proxy reads a PUT at: a big file takes about 9 s
EXIT_BOUND = 30.0  # seconds the command may take to exit after SIGINT


def write_png(path: Path, size: int) -> Path:
    path.write_bytes(png_bytes(size).replace(b"x" * 32, uuid.uuid4().hex.encode(), 1))
    return path


@dataclass
class Interrupted:
    code: int
    stdout: str
    stderr: str
    exit_seconds: float
    before: set[str]
    files: list[Path]
    plan: FaultPlan


@pytest.fixture(scope="module")
def interrupted(local_stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Interrupted]:
    """One interrupted ``imgup upload -j 2`` of a small file and three big ones."""
    directory = tmp_path_factory.mktemp("interrupt")
    files = [write_png(directory / "small-0.png", 40_000)]
    files += [write_png(directory / f"big-{n}.png", BIG) for n in (1, 2, 3)]
    before = set(Consistency(local_stack).gallery())
    plan = FaultPlan().add("PUT", "/images/", Slow(RATE))
    with FaultProxy(local_stack.endpoint_url, plan, rcvbuf=16 * 1024) as proxy:
        env = {k: v for k, v in os.environ.items() if k not in DROPPED}
        env.update(CLEAN_ENV, **proxied_config(local_stack, proxy, directory / "cfg"))
        child = subprocess.Popen(
            [IMGUP, "upload", "--jsonl", "-j", "2", *map(str, files)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            start_new_session=True,
        )
        try:
            # The small file is done and a big one has started in its place.
            assert plan.wait_for("POST", "/complete", 1, timeout=60), "no upload ever completed"
            assert plan.wait_for("PUT", "/images/", 3, timeout=30), "the next upload never started"
            time.sleep(0.3)
            os.kill(child.pid, signal.SIGINT)
            sent = time.monotonic()
            stdout, stderr = child.communicate(timeout=EXIT_BOUND)
            exit_seconds = time.monotonic() - sent
        finally:
            if child.poll() is None:
                child.kill()
                child.communicate(timeout=10)
    yield Interrupted(child.returncode, stdout, stderr, exit_seconds, before, files, plan)


def test_ctrl_c_during_uploads_exits_130_without_a_traceback(interrupted: Interrupted) -> None:
    assert interrupted.code == 130, interrupted.stderr
    assert "Traceback" not in interrupted.stderr
    assert "Unexpected" not in interrupted.stderr


def test_ctrl_c_during_uploads_says_what_finished_and_what_did_not(interrupted: Interrupted) -> None:
    assert "Interrupted: 1 of 4 files uploaded" in interrupted.stderr, interrupted.stderr
    assert "not uploaded" in interrupted.stderr


def test_ctrl_c_during_uploads_prints_the_line_of_every_file_that_is_in_the_gallery(
    local_stack, interrupted: Interrupted
) -> None:
    reported = {line["imageId"]: line["fileName"] for line in iter_lines(interrupted.stdout)}
    assert "small-0.png" in reported.values(), "the upload that completed before Ctrl-C was not reported"
    consistency = Consistency(local_stack)
    # check() asserts that the gallery grew by exactly the reported files, and doctor agrees.
    gallery = consistency.check(before=interrupted.before, reported=reported)
    assert not {i["fileName"] for i in gallery.values()} & {"big-1.png", "big-2.png", "big-3.png"}
    # The big files that were streaming were settled: no object, and no record left ready.
    records = {r.file_name: r for r in consistency.records()}
    objects = consistency.objects()
    for name in ("big-1.png", "big-2.png", "big-3.png"):
        if name in records:
            assert records[name].status != "ready"
            assert records[name].s3_key not in objects
    assert len(interrupted.plan.requests("PUT", "/images/")) <= 3, "a queued file was still sent after Ctrl-C"
