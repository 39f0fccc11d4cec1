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


@dataclass
class Gallery:
    process: subprocess.Popen
    link: str
    stderr: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.link.split("?", 1)[0]

    def stop(self, timeout: float = 30) -> tuple[int, str, str]:
        """Ctrl-C; (exit code, rest of stdout, stderr)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        out, _ = self.process.communicate(timeout=timeout)
        return self.process.returncode, out, "".join(self.stderr)


@contextmanager
def running_gallery(deployment: LocalDeployment, *args: str) -> Iterator[Gallery]:
    env = {**os.environ, **deployment.env}
    process = subprocess.Popen(
        [IMGUP, "gallery", "--no-open", *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,
    )
    errors: list[str] = []
    reader = threading.Thread(target=lambda: errors.extend(process.stderr), daemon=True)  # type: ignore[arg-type]
    reader.start()
    link: list[str] = []
    line_reader = threading.Thread(target=lambda: link.append(process.stdout.readline()), daemon=True)  # type: ignore[union-attr]
    line_reader.start()
    line_reader.join(START_TIMEOUT)
    gallery = Gallery(process, (link or [""])[0].strip(), errors)
    try:
        assert gallery.link.startswith("http://127.0.0.1:"), f"no link on stdout; stderr: {''.join(errors)}"
        yield gallery
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
