"""Every format of data, the same field names everywhere, and listing a gallery of more than a
page: the installed ``imgup`` against the local stack."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from imgup.cli import IMAGE_FIELDS
from tests.samples import png_bytes

pytestmark = pytest.mark.e2e

COUNT = 57  # more than the 50 that `imgup list` shows


@pytest.fixture(scope="module")
def gallery(local_stack, tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    directory = tmp_path_factory.mktemp("formats")
    paths = []
    for n in range(COUNT):
        path = directory / f"img-{n:03d}.png"
        path.write_bytes(png_bytes(100 + n))
        paths.append(str(path))
    uploaded = local_stack.imgup("upload", "-", "--jsonl", "-j", "8", stdin="\n".join(paths))
    assert uploaded.code == 0, uploaded.stderr
    return {line["imageId"]: line for line in uploaded.json_lines()}


def test_upload_results_carry_the_same_fields_as_the_list_and_whether_they_were_there(
    local_stack, gallery: dict[str, dict]
) -> None:
    for line in gallery.values():
        assert list(line) == [*IMAGE_FIELDS, "duplicate"]
        assert line["duplicate"] is False


def test_list_shows_the_newest_50_and_says_there_are_more(local_stack, gallery: dict[str, dict]) -> None:
    result = local_stack.imgup("list", "-q")

    assert result.code == 0
    assert len(result.stdout.splitlines()) == 50
    assert "imgup list --all" in result.stderr


def test_list_all_streams_every_image_once_as_json_lines(local_stack, gallery: dict[str, dict]) -> None:
    result = local_stack.imgup("list", "--all", "--jsonl")

    assert result.code == 0, result.stderr
    rows = result.json_lines()
    ids = [row["imageId"] for row in rows]
    assert set(gallery) <= set(ids) and len(ids) == len(set(ids))
    stamps = [row["uploadedAt"] for row in rows]
    assert stamps == sorted(stamps, reverse=True)
    for row in rows:
        assert list(row) == list(IMAGE_FIELDS)


def test_list_csv_parses_with_the_csv_module_and_a_header_of_the_field_names(
    local_stack, gallery: dict[str, dict]
) -> None:
    result = local_stack.imgup("list", "--all", "--csv")

    assert result.code == 0
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert list(rows[0]) == list(IMAGE_FIELDS)
    by_id = {row["imageId"]: row for row in rows}
    for image_id, line in gallery.items():
        assert by_id[image_id]["fileName"] == line["fileName"]
        assert int(by_id[image_id]["fileSize"]) == line["fileSize"]


def test_list_json_is_one_document_of_the_limit_asked(local_stack, gallery: dict[str, dict]) -> None:
    result = local_stack.imgup("list", "--json", "--limit", "7")

    assert result.code == 0
    assert len(json.loads(result.stdout)) == 7


def test_list_into_a_pipe_gives_tab_separated_fields_without_a_header(
    local_stack, gallery: dict[str, dict]
) -> None:
    result = local_stack.imgup("list", "-n", "3")

    lines = result.stdout.splitlines()
    assert len(lines) == 3
    image_id, name, kind, size, stamp = lines[0].split("\t")
    assert image_id in gallery or len(image_id) == 36
    assert kind.startswith("image/") and size.isdigit() and stamp.endswith("Z")


@pytest.mark.parametrize(
    "args",
    [["list", "--json", "--csv"], ["list", "-q", "--jsonl"], ["list", "--all", "--limit", "5"]],
    ids=" ".join,
)
def test_conflicting_options_are_usage_errors(local_stack, args: list[str]) -> None:
    result = local_stack.imgup(*args)

    assert result.code == 2
    assert result.stdout == ""
    assert "Error:" in result.stderr


def test_ids_piped_from_list_delete_exactly_those_images(local_stack, tmp_path: Path) -> None:
    for n in range(3):
        (tmp_path / f"tmp-{n}.png").write_bytes(png_bytes(3000 + n))
    uploaded = local_stack.imgup("upload", "-q", *map(str, sorted(tmp_path.glob("tmp-*.png"))))
    ids = uploaded.stdout.split()

    deleted = local_stack.imgup("delete", "-", "--yes", "--jsonl", stdin="\n".join(ids) + "\n")

    assert deleted.code == 0, deleted.stderr
    assert sorted(row["imageId"] for row in deleted.json_lines()) == sorted(ids)
    left = set(local_stack.imgup("list", "--all", "-q").stdout.split())
    assert not left & set(ids)


def test_delete_without_yes_and_without_a_terminal_refuses_and_deletes_nothing(
    local_stack, gallery: dict[str, dict]
) -> None:
    image_id = next(iter(gallery))

    result = local_stack.imgup("delete", image_id)

    assert result.code == 2
    assert "--yes" in result.stderr
    assert image_id in local_stack.imgup("list", "--all", "-q").stdout
