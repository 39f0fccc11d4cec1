"""Tags through the CLI and the API, as a user runs imgup against the local stack: upload
--tag, tag, untag, and tags in every output format."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from tests.samples import write_samples

pytestmark = pytest.mark.e2e


@pytest.fixture
def pictures(tmp_path: Path) -> dict[str, Path]:
    directory = tmp_path / "pictures"
    directory.mkdir()
    return write_samples(directory)


def test_tags_given_at_upload_round_trip_through_tag_untag_show_and_list(local_stack, pictures) -> None:
    uploaded = local_stack.imgup(
        "upload", str(pictures["image/png"]), "--tag", "Trip=Iceland", "--tag", "camera=x100", "--json"
    )
    assert uploaded.code == 0, uploaded.stderr
    [image] = uploaded.json()
    assert image["tags"] == {"trip": "Iceland", "camera": "x100"}
    image_id = image["imageId"]

    tagged = local_stack.imgup("tag", image_id, "place=Reykjavík, north", "trip=Iceland 2026", "--json")
    assert tagged.code == 0, tagged.stderr
    assert tagged.json()[0]["tags"] == {"trip": "Iceland 2026", "camera": "x100", "place": "Reykjavík, north"}

    untagged = local_stack.imgup("untag", image_id, "CAMERA", "never-set", "--jsonl")
    assert untagged.code == 0, untagged.stderr
    assert untagged.json_lines()[0]["tags"] == {"trip": "Iceland 2026", "place": "Reykjavík, north"}

    shown = local_stack.imgup("show", image_id, "--json")
    assert shown.json()[0]["tags"] == {"trip": "Iceland 2026", "place": "Reykjavík, north"}
    listed = {i["imageId"]: i for i in local_stack.imgup("list", "--all", "--json").json()}
    assert listed[image_id]["tags"] == {"trip": "Iceland 2026", "place": "Reykjavík, north"}

    rows = {r["imageId"]: r for r in csv.DictReader(io.StringIO(local_stack.imgup("list", "--csv").stdout))}
    assert json.loads(rows[image_id]["tags"]) == {"trip": "Iceland 2026", "place": "Reykjavík, north"}
    plain = local_stack.imgup("tag", image_id, "k=v")
    assert plain.stdout == f"{image_id}\tk=v, place=Reykjavík, north, trip=Iceland 2026\n"
    assert local_stack.imgup("untag", image_id, "k", "-q").stdout == f"{image_id}\n"


def test_an_image_without_tags_shows_an_empty_object_and_csv_cell(local_stack, pictures) -> None:
    uploaded = local_stack.imgup("upload", str(pictures["image/gif"]), "--json")
    [image] = uploaded.json()
    assert image["tags"] == {}
    rows = list(csv.DictReader(io.StringIO(local_stack.imgup("show", image["imageId"], "--csv").stdout)))
    assert rows[0]["tags"] == "{}"


@pytest.mark.parametrize(
    ("tag", "said"),
    [
        ("a b=c", "Invalid tag key 'a b'"),
        ("novalue", "A tag is KEY=VALUE, not 'novalue'"),
        ("k=" + "v" * 129, "The value of tag 'k' must be at most 128 characters"),
    ],
)
def test_a_bad_tag_at_upload_is_a_usage_error_before_anything_is_uploaded(
    local_stack, pictures, tag: str, said: str
) -> None:
    before = local_stack.imgup("list", "--all", "-q").stdout
    result = local_stack.imgup("upload", str(pictures["image/jpeg"]), "--tag", tag)
    assert result.code == 2
    assert result.stdout == ""
    assert f"Error: --tag: {said}" in result.stderr
    assert "Hint: A tag is KEY=VALUE" in result.stderr
    assert local_stack.imgup("list", "--all", "-q").stdout == before


def test_tagging_past_ten_tags_or_an_unknown_image_fails_with_the_reason(local_stack, pictures) -> None:
    [image] = local_stack.imgup("upload", str(pictures["image/webp"]), "--json").json()
    first = [f"k{n}=v" for n in range(10)]
    assert local_stack.imgup("tag", image["imageId"], *first).code == 0

    too_many = local_stack.imgup("tag", image["imageId"], "one=more")
    assert too_many.code == 7
    assert "at most 10 tags; this change would give it 11" in too_many.stderr
    unknown = local_stack.imgup("tag", "00000000-0000-4000-8000-000000000000", "a=b")
    assert unknown.code == 7
    assert "00000000-0000-4000-8000-000000000000: not in the gallery." in unknown.stderr
    eleven = local_stack.imgup("tag", image["imageId"], *first, "k10=v")
    assert eleven.code == 2
    assert "at most 10 tags, not 11" in eleven.stderr


def test_list_filters_by_tag_through_the_api(local_stack, pictures) -> None:
    [first] = local_stack.imgup(
        "upload", str(pictures["image/png"]), "--allow-duplicates", "--tag", "shoot=dunes 2026", "--json"
    ).json()
    [second] = local_stack.imgup(
        "upload",
        str(pictures["image/gif"]),
        "--allow-duplicates",
        "--tag",
        "shoot=dunes 2026",
        "--tag",
        "pick=",
        "--json",
    ).json()

    by_value = local_stack.imgup("list", "--all", "--tag", "shoot=dunes 2026", "-q")
    by_both = local_stack.imgup("list", "--all", "--tag", "Shoot=dunes 2026", "--tag", "pick", "--json")
    none = local_stack.imgup("list", "--all", "--tag", "shoot=dunes", "-q")
    bad = local_stack.imgup("list", "--tag", "bad key")

    assert by_value.code == 0, by_value.stderr
    assert sorted(by_value.stdout.split()) == sorted([first["imageId"], second["imageId"]])
    assert [i["imageId"] for i in by_both.json()] == [second["imageId"]]
    assert none.stdout == ""
    assert bad.code == 2 and "--tag: Invalid tag key 'bad key'" in bad.stderr
