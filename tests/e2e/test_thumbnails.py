"""Thumbnails on the local stack, as a user meets them: every ready image gets one, listed as
thumbnailUrl by list and show; one that cannot be made leaves the image listed and says why in
the stack's log."""

from __future__ import annotations

import io
import time
from pathlib import Path

import httpx
import pytest
from PIL import Image

from tests.samples import jpeg_bytes

pytestmark = pytest.mark.e2e
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
WAIT = 30.0


def listed(local_stack) -> dict[str, dict]:
    result = local_stack.imgup("list", "--all", "--json")
    assert result.code == 0, result.stderr
    return {image["imageId"]: image for image in result.json()}


def until(check, what: str):
    deadline = time.monotonic() + WAIT
    while True:
        found = check()
        if found:
            return found
        assert time.monotonic() < deadline, f"{what} within {WAIT:.0f} s"
        time.sleep(0.2)


def test_every_uploaded_image_gets_a_webp_thumbnail_listed_by_list_and_show(
    local_stack, tmp_path: Path
) -> None:
    big = tmp_path / "big.jpg"
    Image.new("RGB", (1600, 900), (30, 120, 200)).save(big, "JPEG", quality=90)
    files = [big, *sorted(EXAMPLES.iterdir())]
    uploaded = local_stack.imgup("upload", *map(str, files), "--json")
    assert uploaded.code == 0, uploaded.stderr
    ids = [image["imageId"] for image in uploaded.json()]

    images = until(
        lambda: (found := listed(local_stack)) and all(found[i].get("thumbnailUrl") for i in ids) and found,
        "a thumbnail for every image",
    )
    for image_id in ids:
        data = httpx.get(images[image_id]["thumbnailUrl"], trust_env=False).content
        thumb = Image.open(io.BytesIO(data))
        assert thumb.format == "WEBP"
        assert max(thumb.size) <= 256
    by_name = {images[i]["fileName"]: images[i] for i in ids}
    assert Image.open(
        io.BytesIO(httpx.get(by_name["big.jpg"]["thumbnailUrl"], trust_env=False).content)
    ).size == (
        256,
        144,
    )
    shown = local_stack.imgup("show", ids[0], "--json").json()[0]
    assert f"thumbnails/{ids[0]}.webp" in shown["thumbnailUrl"]
    csv_header = local_stack.imgup("list", "--csv", "-n", "1").stdout.splitlines()[0]
    assert csv_header.endswith(",fileUrl,thumbnailUrl")


def test_an_image_whose_thumbnail_fails_stays_listed_and_the_failure_is_logged(
    local_stack, tmp_path: Path
) -> None:
    odd = tmp_path / "header-only.jpg"
    odd.write_bytes(jpeg_bytes(width=32, height=32))  # a JPEG header that no decoder can draw
    uploaded = local_stack.imgup("upload", str(odd), "--json")
    assert uploaded.code == 0, uploaded.stderr
    [image] = uploaded.json()
    log = local_stack.config_dir / "local" / "local.log"

    line = until(
        lambda: next(
            (
                ln
                for ln in log.read_text().splitlines()
                if image["imageId"] in ln and '"outcome": "failed"' in ln
            ),
            None,
        ),
        "the failure in the local stack's log",
    )
    assert "ERROR" in line and "cannot be decoded" in line
    again = listed(local_stack)[image["imageId"]]
    assert again["thumbnailUrl"] is None
    assert again["fileName"] == "header-only.jpg"
