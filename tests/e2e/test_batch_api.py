"""The batch routes over HTTP against the local stack: POST /uploads and POST /uploads/complete
do for many files what the single routes do for one, and hostile requests get 4xx JSON."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.samples import gif_bytes, jpeg_bytes, png_bytes, sha256_hex, webp_bytes

pytestmark = pytest.mark.e2e

ZERO_ID = "00000000-0000-4000-8000-000000000000"


def _post(local_stack, path: str, **kwargs) -> httpx.Response:
    headers = {"x-api-key": local_stack.api_key}
    return httpx.post(local_stack.api_url + path, headers=headers, timeout=60, **kwargs)


def test_many_files_are_presigned_uploaded_and_completed_in_two_requests(local_stack) -> None:
    files = {
        "a.png": ("image/png", png_bytes(100)),
        "b.jpg": ("image/jpeg", jpeg_bytes(100, width=30, height=20)),
        "c.gif": ("image/gif", gif_bytes(10)),
        "d.webp": ("image/webp", webp_bytes(10, width=7, height=5)),
    }
    entries = [
        {"fileName": name, "fileType": kind, "fileSize": len(data), "sha256": sha256_hex(data)}
        for name, (kind, data) in files.items()
    ]
    entries.insert(2, {"fileName": "bad.svg", "fileType": "image/svg+xml", "fileSize": 10})
    answer = _post(local_stack, "/uploads", json={"files": entries})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["count"] == 5
    refused = body["uploads"].pop(2)
    assert (refused["index"], refused["status"], refused["field"]) == (2, 400, "fileType")

    for granted, (_kind, data) in zip(body["uploads"], files.values(), strict=True):
        assert granted["expiresIn"] == 300
        put = httpx.put(granted["uploadUrl"], content=data, headers=granted["uploadHeaders"])
        assert put.status_code == 200

    ids = [granted["imageId"] for granted in body["uploads"]]
    done = _post(local_stack, "/uploads/complete", json={"imageIds": [*ids, ZERO_ID]})
    assert done.status_code == 200, done.text
    images = done.json()["images"]
    assert [image["status"] for image in images] == ["ready"] * 4 + [404]
    sizes = {image["fileName"]: (image["width"], image["height"]) for image in images[:4]}
    assert sizes == {"a.png": (1, 1), "b.jpg": (30, 20), "c.gif": (1, 1), "d.webp": (7, 5)}
    for image, (_kind, data) in zip(images, files.values(), strict=False):
        assert httpx.get(image["fileUrl"]).content == data

    doctor = local_stack.imgup("doctor", "--json")
    assert doctor.code == 0, doctor.stdout + doctor.stderr


def test_the_batch_routes_need_the_api_key_and_answer_cors_preflight(local_stack) -> None:
    for path in ("/uploads", "/uploads/complete"):
        refused = httpx.post(local_stack.api_url + path, json={})
        assert refused.status_code == 403
        preflight = httpx.request("OPTIONS", local_stack.api_url + path)
        assert preflight.status_code == 200
        assert "x-api-key" in preflight.headers["access-control-allow-headers"].lower()


CORPUS = [
    ("/uploads", {"content": b"{not json"}),
    ("/uploads", {"content": b"null"}),
    ("/uploads", {"json": {}}),
    ("/uploads", {"json": {"files": "a.png"}}),
    ("/uploads", {"json": {"files": []}}),
    ("/uploads", {"json": {"files": [{"fileName": "a.png", "fileType": "image/png", "fileSize": 1}] * 101}}),
    ("/uploads", {"content": b'{"files": ' + b"[" * 100_000 + b"}"}),
    ("/uploads", {"content": json.dumps({"files": [{"fileName": "x" * 250}] * 1500}).encode()}),
    ("/uploads/complete", {"json": {"imageIds": []}}),
    ("/uploads/complete", {"json": {"imageIds": [ZERO_ID, ZERO_ID]}}),
    ("/uploads/complete", {"json": {"imageIds": ["../../etc"]}}),
    ("/uploads/complete", {"json": {"imageIds": {"0": ZERO_ID}}}),
    ("/uploads/complete", {"json": {"imageIds": [ZERO_ID] * 101}}),
    ("/uploads/complete", {"content": b"\xff\xfe not utf-8"}),
]


@pytest.mark.parametrize("path, kwargs", CORPUS, ids=[f"{p} {str(k)[:40]}" for p, k in CORPUS])
def test_a_hostile_batch_request_gets_a_4xx_with_a_json_error(local_stack, path, kwargs) -> None:
    answer = _post(local_stack, path, **kwargs)
    assert 400 <= answer.status_code < 500, answer.text[:200]
    assert answer.json()["error"]
