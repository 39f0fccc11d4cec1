"""Lines for people on stderr: plain text without rich where rich would write plain text."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SAY = (
    "import json, sys; from imgup import cli, output; "
    "output.note('a note \\x1b[31m'); output.warn('careful'); output.error('it failed', 'try again'); "
    "output.success('done'); "
    "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] == 'rich')))"
)


def say(**env: str) -> tuple[list[str], str]:
    """What the lines write on a piped stderr, and the rich modules loaded meanwhile."""
    base = {
        k: v for k, v in os.environ.items() if k not in {"FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE"}
    }
    done = subprocess.run(
        [sys.executable, "-c", SAY],
        cwd=ROOT,
        env={**base, "PYTHONIOENCODING": "utf-8", **env},
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=60,
        check=True,
    )
    return json.loads(done.stdout), done.stderr


def test_on_a_pipe_the_lines_are_plain_and_rich_is_not_even_imported() -> None:
    loaded, written = say()

    assert loaded == []
    assert written == "a note \\x1b[31m\nWarning: careful\nError: it failed\nHint: try again\n✓ done\n"


def test_the_plain_lines_are_what_rich_itself_writes_on_a_pipe() -> None:
    # TTY_COMPATIBLE=0 tells rich the stream is no terminal: rich writes the lines itself
    loaded, through_rich = say(TTY_COMPATIBLE="0")

    assert "rich.console" in loaded
    assert through_rich == say()[1]


def test_a_variable_that_asks_rich_for_colour_still_gets_it() -> None:
    loaded, written = say(FORCE_COLOR="1")

    assert "rich.console" in loaded
    assert "\x1b[" in written and "careful" in written
