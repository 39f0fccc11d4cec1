"""Upload progress on the terminal, fed by the upload core's events (imgup.uploads).

One overall bar (files done of total, bytes sent of total, rate, time left) and a bar per file
in flight that follows the bytes the client has handed to the network, then says "verifying"
while storage and the API check it. Nothing animates when stderr is not a terminal, under
NO_COLOR, or with --no-progress. File names are shown literally, never read as markup.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from . import output
from .uploads import Event, Finished, LocalFile, Sent, Started, Stored

if TYPE_CHECKING:
    from rich.progress import Progress, Task

MAX_FILE_BARS = 8
NAME_CELLS = 20


def _progress(total: int, files: str) -> tuple[Progress, Any]:
    """The bars (rich's Progress, imported only when something is shown) and the overall task."""
    from rich.progress import BarColumn, Progress, ProgressColumn, TextColumn
    from rich.text import Text

    class Detail(ProgressColumn):
        """Overall: ``3/31 files  1.5/11.4 MiB  2.1 MiB/s  ETA 0:05``; a file: its size."""

        def render(self, task: Task) -> Text:
            files = task.fields.get("files")
            if files is None:
                return Text(output.format_size(int(task.total or 0)), style="progress.download")
            parts = [files, _fraction(int(task.completed), int(task.total or 0))]
            speed = task.finished_speed or task.speed
            if speed:
                parts.append(f"{output.format_size(int(speed))}/s")
            left = task.time_remaining
            if left is not None and not task.finished:
                parts.append(f"ETA {int(left) // 60}:{int(left) % 60:02d}")
            return Text(" ".join(parts), style="progress.download")

    progress = Progress(
        TextColumn("{task.description}", markup=False),
        BarColumn(bar_width=10),
        Detail(),
        console=output.err,
        transient=True,
        redirect_stdout=False,
        redirect_stderr=False,
    )
    return progress, progress.add_task("Uploading", total=total, files=files)


def _fraction(done: int, total: int) -> str:
    """``1.5/11.4 MiB``: the unit once when both sizes have the same."""
    left, right = output.format_size(done), output.format_size(total)
    number, _, unit = left.rpartition(" ")
    if right.endswith(" " + unit):
        return f"{number}/{right}"
    return f"{left}/{right}"


class UploadDisplay:
    """Renders upload events: progress on stderr and, through ``on_result``, each outcome.
    Disabled, or with no file to upload, it only passes the outcomes on: no bars are kept
    for nobody to see."""

    def __init__(
        self,
        files: Sequence[LocalFile],
        *,
        enabled: bool,
        on_result: Callable[[LocalFile, Any], None],
    ) -> None:
        self.total_files = len(files)
        self.on_result = on_result
        self.enabled = enabled and bool(files)
        self.done = 0
        self.failed = 0
        self._lock = threading.Lock()
        self._tasks: dict[LocalFile, Any] = {}
        if enabled:
            self.progress, self._overall = _progress(sum(f.size for f in files), self._files_text())

    def _files_text(self) -> str:
        failed = f", {self.failed} failed" if self.failed else ""
        return f"{self.done}/{self.total_files} files{failed}"

    def __enter__(self) -> UploadDisplay:
        if self.enabled:
            self.progress.start()
            self._live = output.live_display(output.err)
            self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.enabled:
            self.progress.stop()
            self._live.__exit__(*exc)

    def __call__(self, event: Event) -> None:
        if not self.enabled:
            if isinstance(event, Finished):
                self.on_result(event.file, event.outcome)
            return
        if isinstance(event, Sent):
            task = self._tasks.get(event.file)
            if task is not None:
                self.progress.update(task, advance=event.nbytes)
            self.progress.update(self._overall, advance=event.nbytes)
        elif isinstance(event, Started):
            self._start(event.file)
        elif isinstance(event, Stored):
            task = self._tasks.get(event.file)
            if task is not None:
                self.progress.update(task, description=_label(event.file.name, "verifying"))
        elif isinstance(event, Finished):
            self._finish(event.file, event.outcome)

    def _start(self, local: LocalFile) -> None:
        with self._lock:
            old = self._tasks.pop(local, None)
            if old is not None:  # a fresh URL: the file starts over
                self.progress.remove_task(old)
            visible = len(self._tasks) < MAX_FILE_BARS
            self._tasks[local] = self.progress.add_task(
                _label(local.name), total=local.size, visible=visible and self.total_files > 1
            )

    def _finish(self, local: LocalFile, outcome: Any) -> None:
        with self._lock:
            task = self._tasks.pop(local, None)
            if task is not None:
                sent = self.progress.tasks[self._task_index(task)].completed
                self.progress.remove_task(task)
            else:
                sent = 0
            if outcome.error or outcome.duplicate:
                self.failed += 1 if outcome.error else 0
                # The bytes of a failed or duplicate file are not sent: keep the bar honest.
                self.progress.update(
                    self._overall, total=max(0, (self._overall_task().total or 0) - local.size)
                )
                self.progress.update(self._overall, advance=-sent)
            self.done += 1
            self.progress.update(self._overall, files=self._files_text())
        self.on_result(local, outcome)

    def _overall_task(self) -> Task:
        return self.progress.tasks[self._task_index(self._overall)]

    def _task_index(self, task_id: Any) -> int:
        for index, task in enumerate(self.progress.tasks):
            if task.id == task_id:
                return index
        raise KeyError(task_id)


def _label(name: str, state: str = "") -> str:
    text = output.printable(name)
    shown = output.cell(text, NAME_CELLS - (len(state) + 1 if state else 0)).rstrip()
    return f"{shown} {state}" if state else shown
