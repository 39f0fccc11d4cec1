"""Downloads verified against the record, and local names made safe, with a fake API and store."""

from __future__ import annotations

import hashlib
from pathlib import Path

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from imgup.api import ImageApi, RetryPolicy, make_http_client
from imgup.images import ItemFailed, download, safe_local_name

IMAGE_ID = "0f8e0c1c-3a8e-4f4e-9f3a-2b7c8d9e0a1b"
DATA = b"\x89PNG\r\n\x1a\n" + b"x" * 1000


def api_serving(stored: bytes, recorded: bytes = DATA, name: str = "photo.png") -> ImageApi:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "store.test":
            return httpx.Response(200, content=stored)
        return httpx.Response(
            200,
            json={
                "imageId": IMAGE_ID,
                "fileName": name,
                "fileSize": len(recorded),
                "sha256": hashlib.sha256(recorded).hexdigest(),
                "fileUrl": "https://store.test/object",
            },
        )

    http = make_http_client(5.0, transport=httpx.MockTransport(handler))
    return ImageApi("https://api.test/v1", "key", http, RetryPolicy(retries=0))


def test_a_download_whose_bytes_differ_from_the_record_saves_nothing(tmp_path: Path) -> None:
    api = api_serving(stored=DATA[:-1] + b"y")

    with pytest.raises(ItemFailed) as caught:
        download(api, IMAGE_ID, tmp_path)

    assert "SHA-256" in caught.value.message
    assert list(tmp_path.iterdir()) == []


def test_a_download_saves_the_bytes_under_a_safe_name(tmp_path: Path) -> None:
    api = api_serving(stored=DATA, name="..hidden:name?.png")

    result = download(api, IMAGE_ID, tmp_path)

    assert Path(result["path"]).parent == tmp_path
    assert Path(result["path"]).name == "hidden_name_.png"
    assert Path(result["path"]).read_bytes() == DATA


@pytest.mark.parametrize(
    ("name", "safe"),
    [
        ("photo.png", "photo.png"),
        ("a/b.png", "a_b.png"),
        ("..", "image"),
        (".bashrc", "bashrc"),
        ("CON.png", "_CON.png"),
        ("name. ", "name"),
        ("tab\there.png", "tab_here.png"),
    ],
)
def test_safe_local_name_examples(name: str, safe: str) -> None:
    assert safe_local_name(name) == safe


@given(st.text(min_size=1, max_size=400))
def test_safe_local_name_is_always_one_creatable_name(name: str) -> None:
    safe = safe_local_name(name)

    assert safe and safe not in {".", ".."} and not safe.startswith(".")
    assert "/" not in safe and "\\" not in safe and "\0" not in safe
    assert len(safe.encode("utf-8")) <= 255
    assert safe_local_name(safe) == safe
