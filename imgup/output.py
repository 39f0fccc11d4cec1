"""Everything imgup writes: data to stdout, everything for people to stderr.

- ``emit_json`` / ``emit_line``: data on stdout (JSON with stable field order, JSON Lines,
  plain lines), flushed so pipelines see each result as it lands.
- ``err``: the rich console on stderr for progress, tables, notes, warnings and errors. rich
  drops colour and animation when stderr is not a terminal, and honours ``NO_COLOR``.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console

err = Console(stderr=True, highlight=False, soft_wrap=True)

IMAGE_FIELDS = ("imageId", "fileName", "fileUrl", "fileType", "fileSize", "uploadedAt")


def emit_json(data: Any, *, lines: bool = False) -> None:
    text = json.dumps(
        data, ensure_ascii=False, separators=(",", ":") if lines else None, indent=None if lines else 2
    )
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def emit_line(text: str) -> None:
    sys.stdout.write(printable(text) + "\n")
    sys.stdout.flush()


def image_fields(image: dict[str, Any]) -> dict[str, Any]:
    """An image with the original API's fields, in their order."""
    return {name: image.get(name) for name in IMAGE_FIELDS}


def printable(text: str) -> str:
    """``text`` safe to write anywhere: undecodable file-name bytes and control characters
    are shown as escapes instead of breaking the stream or the terminal."""
    text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return "".join(ch if ch.isprintable() or ch == "\t" else repr(ch)[1:-1] for ch in text)


def note(text: str) -> None:
    err.print(printable(text), markup=False)


def warn(text: str) -> None:
    err.print(f"[yellow]Warning:[/] {text}")


def error(message: str, hint: str | None = None) -> None:
    err.print("[bold red]Error:[/] ", end="")
    err.print(printable(message), markup=False)
    if hint:
        err.print("[dim]Hint:[/] ", end="")
        err.print(printable(hint), markup=False)


def print_table(table: Any) -> None:
    """A table on stderr; on a terminal it fits the screen, elsewhere it keeps its full width."""
    if err.is_terminal:
        err.print(table)
    else:  # a file or a pipe: no screen to fit, so no cell is cut short
        Console(file=sys.stderr, width=10_000, highlight=False).print(table)


def images_table(images: list[dict[str, Any]]) -> Any:
    from rich.table import Table

    from .backend.rules import format_size

    table = Table(box=None, header_style="bold", pad_edge=False)
    table.add_column("Name", no_wrap=True)
    table.add_column("Size", justify="right", no_wrap=True)
    table.add_column("Type", no_wrap=True)
    table.add_column("Uploaded", no_wrap=True)
    table.add_column("Id", no_wrap=True, min_width=36)  # people copy it whole
    for image in images:
        uploaded = str(image.get("uploadedAt") or "")
        table.add_row(
            str(image.get("fileName", "")),
            format_size(size) if isinstance(size := image.get("fileSize"), int) else "-",
            str(image.get("fileType", "")),
            uploaded[:19].replace("T", " "),
            str(image.get("imageId", "")),
        )
    return table
