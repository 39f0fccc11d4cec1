"""Everything imgup writes: data to stdout, everything for people to stderr.

Data (the items a command produces) goes through an ``Emitter`` in one of the output formats,
defined here once for every command:

    table   the default: aligned columns with a header when stdout is a terminal; when it is
            not, a few raw fields per line, tab-separated, without header or truncation
    json    one JSON document: an array of objects (written as the items come)
    jsonl   one JSON object per line, flushed as each item comes
    csv     a header row of field names, then one row per item
    quiet   the ids only, one per line

Field names are the same in every format. Progress, notes, warnings and errors go to ``err``,
the rich console on stderr, with every user-supplied string shown literally (never read as
markup). While a live display (a progress bar) runs on the terminal that stdout also shows,
data lines are printed above it instead of through it; when stdout is a pipe or a file they
go straight to stdout, whatever stderr is.

rich is imported only when something needs it: importing it is a fifth of a command's start
(50 ms of 0.25 s here), paid by every run in a script. When stderr is not a terminal and no
variable asks rich for one (``FORCE_COLOR``, ``TTY_COMPATIBLE``, ``TTY_INTERACTIVE``), rich
would write those lines as plain text, so they are written as plain text directly.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

    err: Console

_lock = threading.RLock()
_live: dict[str, Any] = {"console": None}


class Format(StrEnum):
    TABLE = "table"
    JSON = "json"
    JSONL = "jsonl"
    CSV = "csv"
    QUIET = "quiet"


# --- the streams ---------------------------------------------------------------------------


def stdout_is_terminal() -> bool:
    try:
        return sys.stdout.isatty()
    except (AttributeError, ValueError):
        return False


def stderr_console() -> Console:
    """``err``, the rich console on stderr, made (and rich imported) when first asked for."""
    with _lock:
        if "err" not in globals():
            from rich.console import Console

            globals()["err"] = Console(stderr=True, highlight=False, soft_wrap=True)
    return globals()["err"]


def __getattr__(name: str) -> Any:
    if name == "err":
        return stderr_console()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


_RICH_TERMINAL_VARIABLES = ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE")


def _plain_stderr() -> bool:
    """Whether rich would write plain text on stderr: it is not a terminal, and no variable
    tells rich to treat it as one."""
    if any(os.environ.get(name) is not None for name in _RICH_TERMINAL_VARIABLES):
        return False
    try:
        return not sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def animate() -> bool:
    """Whether progress may animate: stderr is a terminal and NO_COLOR is not set."""
    if _plain_stderr():
        return False
    return (
        stderr_console().is_terminal and not os.environ.get("NO_COLOR") and os.environ.get("TERM") != "dumb"
    )


class live_display:  # noqa: N801 - a context manager used like a function
    """Marks a live display (progress) as running on ``console`` for data lines to avoid."""

    def __init__(self, console: Console | None) -> None:
        self.console = console

    def __enter__(self) -> None:
        with _lock:
            _live["console"] = self.console

    def __exit__(self, *exc: object) -> None:
        with _lock:
            _live["console"] = None


def write_data(text: str) -> None:
    """One line of data on stdout (``text`` without its newline), flushed at once."""
    with _lock:
        console = _live["console"]
        if console is not None and stdout_is_terminal():
            # stdout shows on the terminal the live display redraws: print above it.
            from rich.text import Text

            console.print(Text(text), soft_wrap=True, highlight=False, markup=False)
            return
        sys.stdout.write(text + "\n")
        sys.stdout.flush()


def emit_json(data: Any, *, lines: bool = False) -> None:
    write_data(_json(data, compact=lines))


def emit_line(text: str) -> None:
    write_data(printable(text))


def _json(data: Any, *, compact: bool) -> str:
    return json.dumps(
        data,
        ensure_ascii=False,
        separators=(",", ":") if compact else None,
        indent=None if compact else 2,
    )


def printable(text: str) -> str:
    """``text`` safe to write anywhere: undecodable file-name bytes and control characters
    are shown as escapes instead of breaking the stream or the terminal."""
    text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return "".join(ch if ch.isprintable() or ch == "\t" else repr(ch)[1:-1] for ch in text)


def _say(text: str, label: str = "", style: str = "") -> None:
    """A line for people on stderr: ``label`` in ``style``, then ``text`` shown literally."""
    with _lock:
        if _plain_stderr():
            sys.stderr.write(f"{label}{printable(text)}\n")
            sys.stderr.flush()
            return
        from rich.text import Text

        stderr_console().print(Text.assemble((label, style), printable(text)), highlight=False)


def note(text: str) -> None:
    """A line for people on stderr, shown literally."""
    _say(text)


def warn(text: str) -> None:
    _say(text, "Warning: ", "yellow")


def error(message: str, hint: str | None = None) -> None:
    with _lock:
        _say(message, "Error: ", "bold red")
        if hint:
            _say(hint, "Hint: ", "dim")


def success(text: str) -> None:
    _say(text, "✓ ", "green")


def fields_table(info: Mapping[str, Any]) -> None:
    """``key  value`` lines on stderr (status and deploy summaries), values literal."""
    width = max((len(k) for k in info), default=0)
    for key, value in info.items():
        note(f"  {key:<{width}}  {'-' if value is None else value}")


# --- formats of data -------------------------------------------------------------------------


def format_size(nbytes: int) -> str:
    from .backend.rules import format_size as size

    return size(nbytes)


def _local_time(stamp: str) -> str:
    """An ISO 8601 UTC timestamp as local time, ``YYYY-MM-DD HH:MM``."""
    import datetime as dt

    try:
        moment = dt.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return stamp
    return moment.astimezone().strftime("%Y-%m-%d %H:%M")


def local_zone() -> str:
    return time.strftime("%Z") or "local"


@dataclass(frozen=True)
class Column:
    """A table column: the field it shows, its header, how to show a value."""

    name: str
    header: str
    render: Callable[[Any], str] = lambda value: "" if value is None else str(value)
    width: int | None = None  # fixed width; None: as wide as needed, or what is left
    right: bool = False
    flexible: bool = False  # takes what is left, cut with an ellipsis when too narrow
    optional: bool = False  # dropped first when the terminal is too narrow


def _size(value: Any) -> str:
    return format_size(value) if isinstance(value, int) and not isinstance(value, bool) else "-"


def _type_label(value: Any) -> str:
    from .backend.rules import TYPE_LABELS

    return TYPE_LABELS.get(str(value), str(value or "-"))


def _dimensions(item: Mapping[str, Any]) -> str:
    width, height = item.get("width"), item.get("height")
    return f"{width}x{height}" if width and height else "-"


def tags_text(value: Any) -> str:
    """Tags for people: ``key=value, key=value`` (sorted by key), ``-`` for none."""
    if not isinstance(value, Mapping) or not value:
        return "-"
    return ", ".join(f"{key}={value[key]}" for key in sorted(value))


def _text(value: Any) -> str:
    """A field's value as one line of text (tags as ``key=value, ...``)."""
    if value is None:
        return "-"
    return tags_text(value) if isinstance(value, Mapping) else str(value)


ID = Column("imageId", "Id", width=36)
TAGS = Column("tags", "Tags", render=tags_text, optional=True)
"""Shown when some image has tags; as wide as ``hints["tags"]`` (see :func:`tags_width`)."""


def tags_width(items: Iterable[Mapping[str, Any]], most: int = 32) -> int:
    """The width of the Tags column for these items: their longest tags, at most ``most``."""
    return min(most, max((len(tags_text(i.get("tags"))) for i in items), default=0))


NAME = Column("fileName", "Name", flexible=True)
SIZE = Column("fileSize", "Size", render=_size, width=9, right=True)
TYPE = Column("fileType", "Type", render=_type_label, width=4, optional=True)


def uploaded_column() -> Column:
    return Column(
        "uploadedAt",
        f"Uploaded ({local_zone()})",
        render=lambda v: _local_time(str(v)) if v else "-",
        width=max(16, len(f"Uploaded ({local_zone()})")),
    )


def image_columns() -> list[Column]:
    return [NAME, SIZE, TYPE, uploaded_column(), ID]


def cell(text: str, width: int, right: bool = False) -> str:
    """``text`` cut (with an ellipsis) or padded to ``width`` terminal cells."""
    from rich.cells import cell_len, set_cell_size

    if cell_len(text) > width:
        text = set_cell_size(text, max(width - 1, 0)) + "…" if width > 0 else ""
    pad = " " * (width - cell_len(text))
    return pad + text if right else text + pad


def plan_widths(columns: Sequence[Column], total: int, hints: Mapping[str, int]) -> list[Column]:
    """The columns that fit ``total`` cells, with a width each (optional ones dropped first)."""
    from dataclasses import replace

    chosen = list(columns)
    gap = 2

    def fixed(cols: Sequence[Column]) -> int:
        return sum(c.width or hints.get(c.name, len(c.header)) for c in cols if not c.flexible)

    while True:
        spare = total - fixed(chosen) - gap * (len(chosen) - 1)
        droppable = [c for c in chosen if c.optional]
        if spare >= 12 or not droppable:
            break
        chosen.remove(droppable[-1])
    result = []
    for column in chosen:
        if column.flexible:
            wanted = max(hints.get(column.name, 0), len(column.header))
            result.append(replace(column, width=max(min(wanted, spare), min(8, wanted))))
        else:
            result.append(
                replace(column, width=column.width or max(hints.get(column.name, 0), len(column.header)))
            )
    return result


@dataclass
class Emitter:
    """Writes a command's items in one format, as they come (see the module docstring).

    ``fields`` are the fields of json/jsonl/csv items, in order; ``columns`` those of the
    table. ``hints`` give the widest value expected per column (e.g. the longest file name),
    so that a streamed table is no wider than it needs to be. A JSON document holds back one
    item, to know whether a comma follows it; every other format writes each item at once.
    """

    fmt: Format
    fields: Sequence[str]
    columns: Sequence[Column] = ()
    plain: Sequence[str] = ()  # the fields of a table sent into a pipe or a file, raw
    hints: dict[str, int] = field(default_factory=dict)
    vertical: bool = False  # at a terminal, each item as "field  value" lines
    count: int = 0
    _begun: bool = False
    _widths: list[Column] = field(default_factory=list)
    _held: str | None = None

    def begin(self) -> Emitter:
        with _lock:
            if self._begun:
                return self
            self._begun = True
            if self.fmt is Format.CSV:
                self._csv_row(list(self.fields))
            elif self.fmt is Format.JSON:
                write_data("[")
            elif self.fmt is Format.TABLE and stdout_is_terminal() and not self.vertical:
                # The header comes with the first row: a table of nothing shows nothing.
                self._widths = plan_widths(self.columns, _terminal_width(), self.hints)
        return self

    def row(self, item: Mapping[str, Any]) -> None:
        with _lock:
            self.begin()
            self._row(item)
            self.count += 1

    def _row(self, item: Mapping[str, Any]) -> None:
        if self.fmt is Format.JSON:
            if self._held is not None:
                write_data(self._held + ",")
            self._held = "\n".join(
                "  " + line for line in _json(self._fields(item), compact=False).splitlines()
            )
        elif self.fmt is Format.JSONL:
            write_data(_json(self._fields(item), compact=True))
        elif self.fmt is Format.CSV:
            self._csv_row([_csv_value(item.get(name)) for name in self.fields])
        elif self.fmt is Format.QUIET:
            write_data(printable(str(item.get("imageId", ""))))
        elif self.vertical and stdout_is_terminal():
            if self.count:
                write_data("")
            width = max(len(name) for name in self.fields)
            for name in self.fields:
                value = item.get(name)
                write_data(f"{name:<{width}}  {printable(_text(value))}")
        elif self._widths:
            if not self.count:
                write_data("  ".join(cell(c.header, c.width or 0, c.right) for c in self._widths).rstrip())
            cells = [cell(printable(c.render(item.get(c.name))), c.width or 0, c.right) for c in self._widths]
            write_data("  ".join(cells).rstrip())
        else:  # a table into a pipe or a file: raw fields, tab-separated, nothing cut
            values = (
                "" if item.get(name) is None else _text(item.get(name)) for name in self.plain or self.fields
            )
            write_data("\t".join(printable(v).replace("\t", " ") for v in values))

    def end(self) -> None:
        with _lock:
            self.begin()
            if self.fmt is Format.JSON:
                if self._held is not None:
                    write_data(self._held)
                    self._held = None
                write_data("]")

    def _fields(self, item: Mapping[str, Any]) -> dict[str, Any]:
        return {name: item.get(name) for name in self.fields}

    def _csv_row(self, values: list[str]) -> None:
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerow(values)
        write_data(buffer.getvalue().rstrip("\n"))


def _csv_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value).encode("utf-8", "backslashreplace").decode("utf-8")


def _terminal_width() -> int:
    return shutil.get_terminal_size(fallback=(80, 24)).columns


def resolve_format(*, json_out: bool, jsonl: bool, csv_out: bool, quiet: bool) -> Format:
    """The one format the flags ask for; a UsageError when they ask for more than one."""
    from .errors import UsageError

    chosen = [
        fmt
        for fmt, on in (
            (Format.JSON, json_out),
            (Format.JSONL, jsonl),
            (Format.CSV, csv_out),
            (Format.QUIET, quiet),
        )
        if on
    ]
    if len(chosen) > 1:
        names = {Format.JSON: "--json", Format.JSONL: "--jsonl", Format.CSV: "--csv", Format.QUIET: "--quiet"}
        raise UsageError(f"Choose one output format, not {' and '.join(names[f] for f in chosen)}.")
    return chosen[0] if chosen else Format.TABLE


def emit_all(emitter: Emitter, items: Iterable[Mapping[str, Any]]) -> int:
    """Every item through ``emitter``, begun and ended; the number of items."""
    emitter.begin()
    try:
        for item in items:
            emitter.row(item)
    finally:
        emitter.end()
    return emitter.count
