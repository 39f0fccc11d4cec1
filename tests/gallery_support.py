"""``imgup gallery`` as a user runs it: the installed command in a subprocess, its link read
from stdout, stopped with SIGINT (Ctrl-C) at the end."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from tests.conftest import IMGUP, LocalDeployment

START_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0


@dataclass
class Gallery:
    process: subprocess.Popen
    link: str
    stderr_lines: list[str] = field(default_factory=list)
    readers: list[threading.Thread] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.link.split("?", 1)[0]

    def stop(self) -> tuple[int, str, str]:
        """Ctrl-C, then (exit code, the rest of stdout, all of stderr)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        rest = self.process.stdout.read() if self.process.stdout else ""
        for reader in self.readers:
            reader.join(10)
        for stream in (self.process.stdout, self.process.stderr):
            if stream:
                stream.close()
        return self.process.returncode, rest, "".join(self.stderr_lines)


@contextmanager
def running_gallery(deployment: LocalDeployment, *args: str) -> Iterator[Gallery]:
    process = subprocess.Popen(
        [IMGUP, "gallery", "--no-open", *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **deployment.env},
        start_new_session=True,
    )
    gallery = Gallery(process, "")
    stderr_reader = threading.Thread(target=lambda: gallery.stderr_lines.extend(process.stderr), daemon=True)  # type: ignore[arg-type]
    stderr_reader.start()
    gallery.readers.append(stderr_reader)
    first: list[str] = []
    link_reader = threading.Thread(target=lambda: first.append(process.stdout.readline()), daemon=True)  # type: ignore[union-attr]
    link_reader.start()
    link_reader.join(START_TIMEOUT)
    gallery.link = (first or [""])[0].strip()
    try:
        assert gallery.link.startswith("http://127.0.0.1:"), (
            f"no link on stdout; stderr: {''.join(gallery.stderr_lines)}"
        )
        yield gallery
    finally:
        if process.returncode is None or process.stdout and not process.stdout.closed:
            gallery.stop()
