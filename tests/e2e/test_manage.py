"""Managing images with the installed command: show, download, open."""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path

import pytest

from tests.samples import png_bytes

pytestmark = pytest.mark.e2e

UNKNOWN = "00000000-0000-4000-8000-000000000000"


@pytest.fixture(scope="module")
def two(local_stack, tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    directory = tmp_path_factory.mktemp("manage")
    paths = []
    for name in ("first.png", "second.png"):
        path = directory / name
        path.write_bytes(png_bytes(5000 + len(name)))
        paths.append(str(path))
    uploaded = local_stack.imgup("upload", "--jsonl", *paths)
    assert uploaded.code == 0, uploaded.stderr
    lines = uploaded.json_lines()
    for line, path in zip(sorted(lines, key=lambda i: i["fileName"]), paths, strict=True):
        line["bytes"] = Path(path).read_bytes()
    return sorted(lines, key=lambda i: i["fileName"])


def test_show_gives_every_field_of_each_image(local_stack, two: list[dict]) -> None:
    result = local_stack.imgup("show", "--json", *(i["imageId"] for i in two))

    assert result.code == 0, result.stderr
    shown = json.loads(result.stdout)
    assert [s["imageId"] for s in shown] == [i["imageId"] for i in two]
    for item, image in zip(shown, two, strict=True):
        assert item["fileName"] == image["fileName"]
        assert item["fileSize"] == len(image["bytes"])
        assert item["sha256"] == hashlib.sha256(image["bytes"]).hexdigest()
        assert item["width"] == 1 and item["height"] == 1 or item["width"] is None
        assert item["uploadedAt"].endswith("Z")


def test_show_of_an_unknown_and_a_known_id_reports_the_unknown_and_exits_6(local_stack, two) -> None:
    result = local_stack.imgup("show", "-q", two[0]["imageId"], UNKNOWN)

    assert result.code == 6
    assert result.stdout.split() == [two[0]["imageId"]]
    assert f"Error: {UNKNOWN}: not in the gallery." in result.stderr


def test_download_saves_byte_identical_files_under_their_names(local_stack, two, tmp_path: Path) -> None:
    result = local_stack.imgup("download", "-o", str(tmp_path), "--jsonl", *(i["imageId"] for i in two))

    assert result.code == 0, result.stderr
    for image in two:
        saved = tmp_path / image["fileName"]
        assert saved.read_bytes() == image["bytes"]
        mode = stat.S_IMODE(saved.stat().st_mode)
        assert mode == 0o666 & ~_umask()
    rows = result.json_lines()
    assert sorted(r["path"] for r in rows) == sorted(str(tmp_path / i["fileName"]) for i in two)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".imgup-")], "a temporary file was left"


def test_download_never_overwrites_without_force(local_stack, two, tmp_path: Path) -> None:
    target = tmp_path / two[0]["fileName"]
    target.write_bytes(b"mine")

    refused = local_stack.imgup("download", "-o", str(tmp_path), two[0]["imageId"])
    assert refused.code == 7
    assert "--force" in refused.stderr
    assert target.read_bytes() == b"mine"

    forced = local_stack.imgup("download", "-o", str(tmp_path), "--force", two[0]["imageId"])
    assert forced.code == 0, forced.stderr
    assert target.read_bytes() == two[0]["bytes"]


def test_download_into_a_missing_folder_is_a_usage_error(local_stack, two, tmp_path: Path) -> None:
    result = local_stack.imgup("download", "-o", str(tmp_path / "nowhere"), two[0]["imageId"])

    assert result.code == 2
    assert "is not a folder" in result.stderr


def test_open_hands_the_image_link_to_the_browser(local_stack, two, tmp_path: Path) -> None:
    seen = tmp_path / "seen.txt"
    browser = tmp_path / "browser.sh"
    browser.write_text(f'#!/bin/sh\nprintf "%s" "$1" > {seen}\n')
    browser.chmod(0o755)

    result = local_stack.imgup("open", two[1]["imageId"], env={"BROWSER": str(browser)})

    assert result.code == 0, result.stderr
    assert f"/images/{two[1]['imageId']}/" in seen.read_text()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
