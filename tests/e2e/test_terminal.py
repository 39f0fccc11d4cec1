"""imgup as a person runs it: at a terminal, in pipes, with odd file names.

Each command runs as the installed ``imgup`` in a subprocess with stderr (and for some tests
stdout) on a pseudo-terminal, colour and animation allowed (NO_COLOR unset), so that the
progress display really runs, as it does for a user typing ``imgup upload *.jpg | wc -l``.
"""

from __future__ import annotations

import itertools
import json
import os
import pty
import re
import select
import struct
import subprocess
import termios
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import IMGUP
from tests.samples import png_bytes

pytestmark = pytest.mark.e2e

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\r")
OSC8_LINK = "\x1b]8;"


@dataclass
class TtyRun:
    code: int
    stdout: str  # the pipe, or the terminal's text when stdout is the terminal too
    terminal: str  # everything written to the terminal, escapes included

    @property
    def screen(self) -> str:
        """The terminal's text without escape sequences."""
        return ANSI.sub("", self.terminal)


def run_at_terminal(
    *args: str,
    env: dict[str, str],
    stdin: bytes | None = None,
    stdout_too: bool = False,
    columns: int = 80,
    timeout: float = 120,
) -> TtyRun:
    """The real command with stderr (and stdout when ``stdout_too``) on a pseudo-terminal of
    ``columns`` columns, stdout otherwise a pipe; stdin a pipe holding ``stdin`` (or empty)."""
    master, slave = pty.openpty()
    termios_size = struct.pack("HHHH", 40, columns, 0, 0)
    import fcntl

    fcntl.ioctl(slave, termios.TIOCSWINSZ, termios_size)
    full_env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    full_env.update(env)
    full_env.pop("NO_COLOR", None)
    full_env.update(TERM="xterm-256color", COLUMNS=str(columns))
    child = subprocess.Popen(
        [IMGUP, *args],
        stdin=subprocess.PIPE,
        stdout=slave if stdout_too else subprocess.PIPE,
        stderr=slave,
        env=full_env,
    )
    os.close(slave)
    assert child.stdin is not None
    child.stdin.write(stdin or b"")
    child.stdin.close()
    chunks: list[bytes] = []
    piped: list[bytes] = []
    deadline = time.monotonic() + timeout
    streams = [master] + ([] if stdout_too else [child.stdout.fileno()])  # type: ignore[union-attr]
    while streams and time.monotonic() < deadline:
        ready, _, _ = select.select(streams, [], [], 0.2)
        for fd in ready:
            try:
                data = os.read(fd, 65536)
            except OSError:  # the terminal closed with the child
                data = b""
            if not data:
                streams.remove(fd)
            elif fd == master:
                chunks.append(data)
            else:
                piped.append(data)
        if child.poll() is not None and not ready:
            break
    code = child.wait(timeout=max(1.0, deadline - time.monotonic()))
    os.close(master)
    if child.stdout is not None:
        child.stdout.close()
    terminal = b"".join(chunks).decode("utf-8", "replace")
    out = ANSI.sub("", terminal) if stdout_too else b"".join(piped).decode("utf-8", "replace")
    return TtyRun(code, out, terminal)


_SERIAL = itertools.count()


def write_pngs(directory: Path, names: list[str], size: int = 300_000) -> list[Path]:
    """PNGs whose bytes differ from every other file this module writes: the gallery would
    report the same bytes as a duplicate, not upload them again."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in names:
        data = png_bytes(size)
        path = directory / name
        path.write_bytes(data.replace(b"x" * 8, f"{next(_SERIAL):08d}".encode(), 1))
        paths.append(path)
    return paths


@pytest.fixture(scope="module")
def pictures(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return write_pngs(tmp_path_factory.mktemp("terminal"), [f"pic-{n}.png" for n in range(12)])


# --- item 1: data reaches stdout, whatever stderr is ------------------------------------


def test_upload_json_into_a_pipe_at_a_terminal_gives_every_line_while_progress_shows(
    local_stack, pictures: list[Path]
) -> None:
    run = run_at_terminal("upload", "--jsonl", "-j", "2", *map(str, pictures), env=local_stack.env)

    assert run.code == 0, run.screen
    lines = [json.loads(line) for line in run.stdout.splitlines()]
    assert sorted(line["fileName"] for line in lines) == sorted(p.name for p in pictures)
    assert "files" in run.screen and "MiB" in run.screen  # the progress display did run
    assert "imageId" not in run.terminal  # no data went to the terminal


@pytest.mark.parametrize(
    "args",
    [
        ["upload"],
        ["upload", "--json"],
        ["upload", "--csv"],
        ["upload", "-q"],
    ],
    ids=" ".join,
)
def test_upload_in_every_format_from_stdin_into_a_pipe_at_a_terminal_keeps_its_data(
    local_stack, tmp_path: Path, args: list[str]
) -> None:
    files = write_pngs(tmp_path, ["a.png", "b.png", "c.png"], size=50_000)
    stdin = "\n".join(map(str, files)).encode() + b"\n"

    run = run_at_terminal(*args, "-", env=local_stack.env, stdin=stdin)

    assert run.code == 0, run.screen
    text = run.stdout
    if "--json" in args:
        assert sorted(i["fileName"] for i in json.loads(text)) == ["a.png", "b.png", "c.png"]
    elif "--csv" in args:
        rows = text.splitlines()
        assert rows[0].startswith("imageId,fileName,") and len(rows) == 4
    else:
        assert len(text.splitlines()) == 3


@pytest.mark.parametrize(
    "args",
    [
        ["list", "--json"],
        ["list", "-q"],
        ["list", "--csv"],
        ["list"],
        ["status", "--json"],
        ["doctor", "--json"],
    ],
    ids=" ".join,
)
def test_commands_that_print_data_into_a_pipe_at_a_terminal_keep_it(local_stack, args: list[str]) -> None:
    run = run_at_terminal(*args, env=local_stack.env)

    assert run.code == 0, run.screen
    assert run.stdout.strip(), f"imgup {' '.join(args)} printed no data into the pipe"
    if "--json" in args:
        json.loads(run.stdout)


def test_delete_into_a_pipe_at_a_terminal_prints_the_deleted_ids(local_stack, tmp_path: Path) -> None:
    [path] = write_pngs(tmp_path, ["gone.png"], size=20_000)
    uploaded = local_stack.imgup("upload", "-q", str(path))
    image_id = uploaded.stdout.strip()

    run = run_at_terminal("delete", "--yes", image_id, env=local_stack.env)

    assert run.code == 0, run.screen
    assert run.stdout.split() == [image_id]


# --- items 6, 11, 13: what the terminal shows ------------------------------------------------


def test_file_names_are_shown_literally_never_as_markup_or_links(local_stack, tmp_path: Path) -> None:
    names = ["[bold red]x.png", "[link=mailto:me@example.test]y.png"]
    files = write_pngs(tmp_path, names, size=10_000)

    uploaded = run_at_terminal("upload", *map(str, files), env=local_stack.env, stdout_too=True, columns=160)
    listed = run_at_terminal("list", "-n", "20", env=local_stack.env, stdout_too=True, columns=160)
    piped = local_stack.imgup("list", "-n", "20")

    for run in (uploaded, listed):
        assert run.code == 0, run.screen
        assert OSC8_LINK not in run.terminal
        for name in names:
            assert name in run.screen
    for name in names:
        assert name in piped.stdout


def test_the_list_table_fits_80_columns_and_keeps_every_id_whole(local_stack, pictures: list[Path]) -> None:
    # ten images at least, whatever the module's other tests left in the gallery
    short = write_pngs(pictures[0].parent / "ten", [f"t{n}.png" for n in range(9)], size=1000)
    long_name = write_pngs(pictures[0].parent / "long", ["a-very-long-file-name-" * 4 + ".png"], size=1000)
    assert local_stack.imgup("upload", *map(str, [*short, *long_name])).code == 0

    run = run_at_terminal("list", "-n", "10", env=local_stack.env, stdout_too=True, columns=80)

    assert run.code == 0, run.screen
    lines = [line for line in run.stdout.splitlines() if line.strip()]
    table = [line for line in lines if re.search(r"[0-9a-f]{8}-[0-9a-f]{4}-", line)]
    assert len(table) == 10
    from rich.cells import cell_len

    assert all(cell_len(line) <= 80 for line in lines[: len(table) + 1]), lines
    assert all(re.search(r"[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}$", line) for line in table)
    header = lines[0]
    assert re.search(r"Uploaded \([A-Za-z+0-9:-]+\)", header), header  # times say their zone
    assert "…" in run.stdout  # the long name was cut, not the id


def test_progress_counts_files_in_binary_units_and_is_off_with_no_progress(
    local_stack, tmp_path: Path
) -> None:
    files = write_pngs(tmp_path, [f"p{n}.png" for n in range(6)], size=400_000)

    shown = run_at_terminal("upload", "-j", "2", *map(str, files[:3]), env=local_stack.env)
    asked = run_at_terminal("upload", "--no-progress", *map(str, files[3:]), env=local_stack.env)

    assert shown.code == asked.code == 0
    assert re.search(r"\d+/3 files", shown.screen) and "MiB" in shown.screen
    assert not re.search(r"\b\d+(\.\d+)? ?(kB|KB|MB)\b", shown.screen), "mixed unit systems"
    assert "━" not in asked.terminal and "/3 files" not in asked.screen


def test_no_color_means_no_animation_at_a_terminal(local_stack, tmp_path: Path) -> None:
    files = write_pngs(tmp_path, ["n1.png", "n2.png"], size=200_000)
    env = {**local_stack.env, "NO_COLOR": "1"}
    master, slave = pty.openpty()
    child = subprocess.run(
        [IMGUP, "upload", *map(str, files)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=slave,
        env={**os.environ, **env, "TERM": "xterm-256color"},
        timeout=120,
    )
    os.close(slave)
    screen = b""
    while select.select([master], [], [], 0.1)[0]:
        try:
            data = os.read(master, 65536)
        except OSError:
            break
        if not data:
            break
        screen += data
    os.close(master)
    assert child.returncode == 0
    assert b"\x1b[" not in screen and "━".encode() not in screen
    assert len(child.stdout.splitlines()) == 2


# --- item 10: exit codes and one line per problem ------------------------------------------


def test_a_batch_where_nothing_succeeds_exits_7_with_one_line_per_problem(
    local_stack, tmp_path: Path
) -> None:
    missing = local_stack.imgup("upload", str(tmp_path / "nosuch.jpg"))
    unknown = local_stack.imgup("delete", "--yes", "00000000-0000-4000-8000-000000000000")
    two_missing = local_stack.imgup("upload", str(tmp_path / "a.jpg"), str(tmp_path / "b.jpg"))

    assert missing.code == unknown.code == two_missing.code == 7
    assert [line for line in missing.stderr.splitlines() if line.strip()] == [
        f"Error: {tmp_path / 'nosuch.jpg'}: no such file."
    ]
    assert [line for line in unknown.stderr.splitlines() if line.strip()] == [
        "Error: 00000000-0000-4000-8000-000000000000: Image not found"
    ]
    assert len([line for line in two_missing.stderr.splitlines() if line.startswith("Error:")]) == 2
    assert missing.stdout == unknown.stdout == ""


def test_at_a_terminal_nothing_to_upload_shows_no_table_header_and_no_progress(
    local_stack, tmp_path: Path
) -> None:
    [good] = write_pngs(tmp_path, ["good.png"], size=1000)

    nothing = run_at_terminal("upload", str(tmp_path / "nosuch.png"), env=local_stack.env, stdout_too=True)
    one = run_at_terminal("upload", str(good), env=local_stack.env, stdout_too=True)

    assert nothing.code == 7 and "nosuch.png: no such file." in nothing.screen
    assert one.code == 0
    header = re.compile(r"Name +Size +Type +Id")
    assert header.search(one.screen) and one.screen.index("good.png") > header.search(one.screen).start()
    assert not header.search(nothing.screen) and "Uploading" not in nothing.screen, nothing.screen


def test_a_batch_where_some_succeed_exits_6(local_stack, tmp_path: Path) -> None:
    [good] = write_pngs(tmp_path, ["good.png"], size=1000)

    result = local_stack.imgup("upload", str(good), str(tmp_path / "missing.png"))

    assert result.code == 6
    assert len(result.stdout.splitlines()) == 1
    assert [line for line in result.stderr.splitlines() if line.startswith("Error:")] == [
        f"Error: {tmp_path / 'missing.png'}: no such file."
    ]
    assert "Uploaded 1 of 2 files." in result.stderr


def test_ignore_missing_makes_an_unknown_id_not_an_error(local_stack) -> None:
    result = local_stack.imgup("delete", "--yes", "--ignore-missing", "00000000-0000-4000-8000-000000000000")

    assert result.code == 0
    assert "Error" not in result.stderr


def test_a_bad_id_on_stdin_is_one_failed_item_not_the_end_of_the_batch(local_stack, tmp_path: Path) -> None:
    [path] = write_pngs(tmp_path, ["victim.png"], size=1000)
    image_id = local_stack.imgup("upload", "-q", str(path)).stdout.strip()

    result = local_stack.imgup("delete", "-", "--yes", stdin=f"not/an id\n{image_id}\n\n")

    assert result.code == 6, result.stderr
    assert result.stdout.split() == [image_id]
    assert "not/an id" in result.stderr


def test_a_nul_byte_in_one_path_on_stdin_fails_that_path_alone(local_stack, tmp_path: Path) -> None:
    [path] = write_pngs(tmp_path, ["fine.png"], size=1000)

    result = local_stack.imgup("upload", "-", stdin=f"bad\0name.png\n{path}\n")

    assert result.code == 6, result.stderr
    assert len(result.stdout.splitlines()) == 1
    assert "NUL" in result.stderr and "Traceback" not in result.stderr and "bug" not in result.stderr


def test_nul_separated_paths_are_read_with_dash_0(local_stack, tmp_path: Path) -> None:
    files = write_pngs(tmp_path, ["with space.png", "plain.png"], size=1000)

    result = local_stack.imgup("upload", "-0", "-", "--jsonl", stdin="\0".join(map(str, files)) + "\0")

    assert result.code == 0, result.stderr
    assert sorted(json.loads(line)["fileName"] for line in result.stdout.splitlines()) == [
        "plain.png",
        "with space.png",
    ]
