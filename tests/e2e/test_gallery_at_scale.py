"""Filters, counts, duplicates and share links with the installed command against the local
stack: what a user and a script see."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest

from tests.samples import gif_bytes, jpeg_bytes, png_bytes

pytestmark = pytest.mark.e2e


def write(directory: Path, name: str, data: bytes) -> str:
    path = directory / name
    path.write_bytes(data)
    return str(path)


@pytest.fixture(scope="module")
def gallery(local_stack, tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    """Nine images, one at a time so that their order is known: tmp-0..3.png, keep-0..2.jpg,
    clip-0..1.gif; by file name."""
    directory = tmp_path_factory.mktemp("scale")
    files = [write(directory, f"tmp-{n}.png", png_bytes(300 + n)) for n in range(4)]
    files += [write(directory, f"keep-{n}.jpg", jpeg_bytes(300 + n)) for n in range(3)]
    files += [write(directory, f"clip-{n}.gif", gif_bytes(300 + n)) for n in range(2)]
    found = {}
    for path in files:
        uploaded = local_stack.imgup("upload", "--jsonl", path)
        assert uploaded.code == 0, uploaded.stderr
        (line,) = uploaded.json_lines()
        found[line["fileName"]] = line | {"path": path}
    return found


def listed(local_stack, *args: str) -> list[str]:
    result = local_stack.imgup("list", "--all", "--jsonl", *args)
    assert result.code == 0, result.stderr
    return [row["fileName"] for row in result.json_lines()]


def test_name_and_type_filters_keep_exactly_the_matching_images(local_stack, gallery) -> None:
    assert listed(local_stack, "--name", "tmp-*") == ["tmp-3.png", "tmp-2.png", "tmp-1.png", "tmp-0.png"]
    assert listed(local_stack, "--type", "gif") == ["clip-1.gif", "clip-0.gif"]
    assert listed(local_stack, "--type", "jpeg", "--type", "gif", "--name", "*-1.*") == [
        "clip-1.gif",
        "keep-1.jpg",
    ]
    assert listed(local_stack, "--name", "tmp-[02].png", "--oldest-first") == ["tmp-0.png", "tmp-2.png"]


def test_since_and_until_cut_the_gallery_at_upload_times(local_stack, gallery) -> None:
    middle = gallery["keep-0.jpg"]["uploadedAt"]
    after = listed(local_stack, "--since", middle, "--name", "*-*")
    before = listed(local_stack, "--until", middle, "--name", "*-*")
    assert after[-1] == "keep-0.jpg" and "keep-0.jpg" not in before
    assert sorted(after + before) == sorted(gallery)
    assert listed(local_stack, "--since", "1d", "--name", "keep-*") == [
        "keep-2.jpg",
        "keep-1.jpg",
        "keep-0.jpg",
    ]
    assert listed(local_stack, "--since", "2999-01-01") == []


def test_the_first_page_says_how_many_more_match_and_how_to_see_them(local_stack, gallery) -> None:
    result = local_stack.imgup("list", "-n", "2", "--name", "tmp-*", "-q")

    assert result.code == 0
    assert result.stdout.split() == [gallery["tmp-3.png"]["imageId"], gallery["tmp-2.png"]["imageId"]]
    assert "The newest 2 of 4 images that match are shown." in result.stderr
    assert "imgup list --all --name 'tmp-*'" in result.stderr


def test_a_filter_that_matches_nothing_says_so_and_succeeds(local_stack, gallery) -> None:
    result = local_stack.imgup("list", "--name", "nothing-like-this*")
    assert (result.code, result.stdout) == (0, "")
    assert "No image matches." in result.stderr


@pytest.mark.parametrize(
    "args, named",
    [
        (["--since", "yesterday"], "--since"),
        (["--until", "2026-02-30"], "--until"),
        (["--type", "svg"], "--type"),
        (["--since", "2026-01-02", "--until", "2026-01-01"], "--since"),
        (["--name", "a\x01"], "--name"),
    ],
)
def test_a_bad_filter_is_a_usage_error_before_any_request(local_stack, args, named) -> None:
    result = local_stack.imgup("list", *args)
    assert result.code == 2 and result.stdout == ""
    assert named in result.stderr


def test_a_filtered_list_pipes_into_delete(local_stack, tmp_path: Path) -> None:
    paths = [write(tmp_path, f"scratch-{n}.png", png_bytes(900 + n)) for n in range(3)]
    assert local_stack.imgup("upload", *paths).code == 0
    ids = local_stack.imgup("list", "-q", "--name", "scratch-*").stdout
    deleted = local_stack.imgup("delete", "-", "--yes", stdin=ids)
    assert deleted.code == 0, deleted.stderr
    assert listed(local_stack, "--name", "scratch-*") == []


# --- duplicates ------------------------------------------------------------------------------


def stored_objects(local_stack) -> set[str]:
    """Every stored version of an image (the thumbnails beside them are not uploads)."""
    import boto3

    s3 = boto3.session.Session(region_name="us-east-1").client("s3", endpoint_url=local_stack.endpoint_url)
    pages = s3.get_paginator("list_object_versions").paginate(Bucket=local_stack.bucket, Prefix="images/")
    return {f"{v['Key']}@{v['VersionId']}" for page in pages for v in page.get("Versions", [])}


def test_uploading_bytes_again_reports_the_existing_image_and_stores_nothing(local_stack, gallery) -> None:
    before = stored_objects(local_stack)
    again = local_stack.imgup("upload", "--jsonl", gallery["tmp-0.png"]["path"])

    assert again.code == 0, again.stderr
    (line,) = again.json_lines()
    assert line["duplicate"] is True and line["imageId"] == gallery["tmp-0.png"]["imageId"]
    assert "already in the gallery as " + line["imageId"] in again.stderr
    assert stored_objects(local_stack) == before


def test_a_rerun_of_an_interrupted_batch_uploads_only_what_is_missing(local_stack, tmp_path: Path) -> None:
    paths = [write(tmp_path, f"batch-{n}.png", png_bytes(1200 + n)) for n in range(5)]
    first = local_stack.imgup("upload", "--jsonl", *paths[:2])  # as if stopped after two
    assert first.code == 0
    before = stored_objects(local_stack)

    rerun = local_stack.imgup("upload", "--jsonl", *paths)

    assert rerun.code == 0, rerun.stderr
    rows = {row["fileName"]: row for row in rerun.json_lines()}
    assert sorted(name for name, row in rows.items() if row["duplicate"]) == ["batch-0.png", "batch-1.png"]
    assert len(stored_objects(local_stack) - before) == 3
    assert "Uploaded 3 of 5 files; 2 were in the gallery already." in rerun.stderr


def test_allow_duplicates_stores_a_second_copy(local_stack, gallery) -> None:
    before = stored_objects(local_stack)
    again = local_stack.imgup("upload", "--jsonl", "--allow-duplicates", gallery["clip-0.gif"]["path"])

    (line,) = again.json_lines()
    assert line["duplicate"] is False and line["imageId"] != gallery["clip-0.gif"]["imageId"]
    assert len(stored_objects(local_stack) - before) == 1
    assert local_stack.imgup("delete", "--yes", line["imageId"]).code == 0


# --- share links -----------------------------------------------------------------------------


def share(local_stack, image_id: str, expires: str) -> dict:
    result = local_stack.imgup("share", "--json", "--expires", expires, image_id)
    assert result.code == 0, result.stderr
    (link,) = json.loads(result.stdout)
    return link


def test_a_share_link_opens_without_the_api_key_for_its_life_and_stops_after(local_stack, gallery) -> None:
    image = gallery["keep-2.jpg"]
    link = share(local_stack, image["imageId"], "4s")
    assert link["url"].startswith(local_stack.api_url + "/share/")

    opened = httpx.get(link["url"], timeout=30)  # no x-api-key: as a browser opens it
    assert opened.status_code == 302
    fetched = httpx.get(link["url"], follow_redirects=True, timeout=30)
    assert fetched.status_code == 200
    assert fetched.content == Path(image["path"]).read_bytes()

    time.sleep(link["expiresIn"] + 1.5)
    gone = httpx.get(link["url"], timeout=30)
    assert gone.status_code == 410
    assert gone.json()["error"] == "This share link has expired"


def test_a_share_link_stops_when_its_image_is_deleted(local_stack, tmp_path: Path) -> None:
    path = write(tmp_path, "shared-then-deleted.png", png_bytes(4321))
    (line,) = local_stack.imgup("upload", "--jsonl", path).json_lines()
    link = share(local_stack, line["imageId"], "1h")
    assert httpx.get(link["url"], timeout=30).status_code == 302

    assert local_stack.imgup("delete", "--yes", line["imageId"]).code == 0

    gone = httpx.get(link["url"], timeout=30)
    assert gone.status_code == 410 and gone.json()["error"]


def test_share_prints_only_the_link_into_a_pipe_and_refuses_a_life_over_7_days(local_stack, gallery) -> None:
    plain = local_stack.imgup("share", gallery["tmp-1.png"]["imageId"])
    assert plain.code == 0
    assert plain.stdout.strip().startswith(local_stack.api_url + "/share/")
    assert len(plain.stdout.splitlines()) == 1

    refused = local_stack.imgup("share", "--expires", "8d", gallery["tmp-1.png"]["imageId"])
    assert refused.code == 2 and "at most 1 week" in refused.stderr


def test_share_of_an_unknown_image_fails_with_exit_7(local_stack) -> None:
    result = local_stack.imgup("share", "00000000-0000-4000-8000-000000000000")
    assert result.code == 7
    assert "not in the gallery" in result.stderr
