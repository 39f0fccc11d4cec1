"""Hostile requests and lying uploads, over HTTP, against the local stack: every one gets a
4xx with a JSON error (never a 5xx), and nothing a lie put in the bucket survives."""

from __future__ import annotations

import hashlib
from urllib.parse import unquote, urlsplit

import httpx
import pytest

from tests.samples import png_bytes

pytestmark = pytest.mark.e2e

ZERO_ID = "00000000-0000-4000-8000-000000000000"
CORPUS = [
    ("POST", "/upload", {"content": b"{not json"}),
    ("POST", "/upload", {"content": b"\xff\xfe\x00 not utf-8"}),
    ("POST", "/upload", {"content": b"[1, 2, 3]"}),
    ("POST", "/upload", {"content": b"null"}),
    ("POST", "/upload", {"json": {"fileName": "a.png", "fileType": "image/png"}}),
    ("POST", "/upload", {"json": {"fileName": "a.svg", "fileType": "image/svg+xml", "fileSize": 10}}),
    ("POST", "/upload", {"json": {"fileName": "../../etc/passwd", "fileType": "image/png", "fileSize": 10}}),
    ("POST", "/upload", {"json": {"fileName": "a\x00.png", "fileType": "image/png", "fileSize": 10}}),
    ("POST", "/upload", {"json": {"fileName": "", "fileType": "image/png", "fileSize": 10}}),
    ("POST", "/upload", {"json": {"fileName": "a" * 300 + ".png", "fileType": "image/png", "fileSize": 10}}),
    ("POST", "/upload", {"json": {"fileName": "a.png", "fileType": "image/png", "fileSize": True}}),
    ("POST", "/upload", {"json": {"fileName": "a.png", "fileType": "image/png", "fileSize": 2.5}}),
    ("POST", "/upload", {"json": {"fileName": "a.png", "fileType": "image/png", "fileSize": 0}}),
    ("POST", "/upload", {"json": {"fileName": "a.png", "fileType": "image/png", "fileSize": -1}}),
    ("POST", "/upload", {"json": {"fileName": "a.png", "fileType": "image/png", "fileSize": 10**30}}),
    (
        "POST",
        "/upload",
        {"json": {"fileName": "a.png", "fileType": "image/png", "fileSize": 10, "sha256": "zz"}},
    ),
    ("POST", "/upload", {"content": b"[" * 100_000}),
    ("POST", "/upload", {"content": b"x" * (11 * 1024 * 1024)}),
    ("GET", "/images?cursor=%25%25%25", {}),
    ("GET", "/images?cursor=eyJpbWFnZUlkIjogMX0", {}),
    ("GET", "/images?limit=-5", {}),
    ("GET", "/images?limit=abc", {}),
    ("GET", "/images/..%2F..%2Fetc", {}),
    ("GET", "/images/%F0%9F%98%80", {}),
    ("GET", f"/images/{ZERO_ID}", {}),
    ("DELETE", f"/images/{ZERO_ID}", {}),
    ("POST", f"/images/{ZERO_ID}/complete", {}),
    ("POST", "/images/not-an-id/complete", {}),
    ("PATCH", "/images", {}),
    ("GET", "/" + "a" * 5000, {}),
    # filters of GET /images
    ("GET", "/images?limit=1001", {}),
    ("GET", "/images?name=" + "x" * 300, {}),
    ("GET", "/images?name=a%00b", {}),
    ("GET", "/images?type=svg", {}),
    ("GET", "/images?type=png,,gif", {}),
    ("GET", "/images?since=yesterday", {}),
    ("GET", "/images?since=2026-02-30", {}),
    ("GET", "/images?since=99999-01-01", {}),
    ("GET", "/images?since=2026-01-02&until=2026-01-01", {}),
    ("GET", "/images?order=random", {}),
    ("GET", "/images?countRemaining=yes", {}),
    ("GET", "/images?cursor=eyJnYWxsZXJ5UGsiOiJyZWFkeSJ9&order=oldest", {}),
    # duplicates
    (
        "POST",
        "/upload",
        {"json": {"fileName": "a.png", "fileType": "image/png", "fileSize": 10, "allowDuplicates": 1}},
    ),
    (
        "POST",
        "/uploads",
        {
            "json": {
                "files": [
                    {"fileName": "a.png", "fileType": "image/png", "fileSize": 10, "allowDuplicates": "no"}
                ]
            },
            "entry": True,
        },
    ),
    # share links
    ("POST", f"/images/{ZERO_ID}/share", {}),
    ("POST", "/images/not-an-id/share", {}),
    ("POST", f"/images/{ZERO_ID}/share", {"json": {"expiresIn": 0}}),
    ("POST", f"/images/{ZERO_ID}/share", {"json": {"expiresIn": 604801}}),
    ("POST", f"/images/{ZERO_ID}/share", {"json": {"expiresIn": "1h"}}),
    ("POST", f"/images/{ZERO_ID}/share", {"content": b"{not json"}),
    ("GET", "/share/garbage", {"no_key": True}),
    ("GET", f"/share/{ZERO_ID}.1999999999.{'A' * 43}", {"no_key": True}),
    ("GET", "/share/" + "a" * 3000, {"no_key": True}),
    ("GET", "/share/%00%01", {"no_key": True}),
    ("DELETE", f"/share/{ZERO_ID}.1.{'A' * 43}", {"no_key": True}),
]


@pytest.mark.parametrize("method, path, kwargs", CORPUS, ids=[f"{m} {p[:40]}" for m, p, _ in CORPUS])
def test_a_hostile_request_gets_a_4xx_with_a_json_error(local_stack, method, path, kwargs) -> None:
    kwargs = dict(kwargs)
    headers = {} if kwargs.pop("no_key", False) else {"x-api-key": local_stack.api_key}
    per_entry = kwargs.pop("entry", False)  # a batch refuses the entry, not the request
    answer = httpx.request(method, local_stack.api_url + path, headers=headers, timeout=30, **kwargs)
    body = answer.json()
    if per_entry:
        assert answer.status_code == 200
        body = body["uploads"][0]
        assert body["status"] == 400
    else:
        assert 400 <= answer.status_code < 500, answer.text[:200]
    assert isinstance(body, dict) and (body.get("error") or body.get("message"))


def _lie(local_stack, declared: dict, body: bytes) -> tuple[httpx.Response, str]:
    headers = {"x-api-key": local_stack.api_key}
    grant = httpx.post(local_stack.api_url + "/upload", json=declared, headers=headers).json()
    put = httpx.put(grant["uploadUrl"], content=body, headers={"Content-Type": declared["fileType"]})
    if put.status_code != 200:
        # The local stack, as S3, refuses a body its URL did not sign (another length, no
        # signed checksum). A writer with the bucket's own credentials can still store one,
        # and completion must catch what it finds.
        assert put.status_code in (400, 403), put.text
        key = unquote(urlsplit(grant["uploadUrl"]).path).split("/", 2)[2]
        _bucket_writer(local_stack).put_object(
            Bucket=local_stack.bucket, Key=key, Body=body, ContentType=declared["fileType"]
        )
    done = httpx.post(local_stack.api_url + f"/images/{grant['imageId']}/complete", headers=headers)
    return done, grant["imageId"]


def _bucket_writer(local_stack):
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=local_stack.endpoint_url,
        region_name="us-east-1",
        config=Config(s3={"addressing_style": "path"}),
    )


@pytest.mark.parametrize(
    "declared, body, status",
    [
        ({"fileName": "big.png", "fileType": "image/png", "fileSize": 100}, png_bytes(5000), 413),
        (
            {"fileName": "text.png", "fileType": "image/png", "fileSize": 26},
            b"I am text posing as a PNG.",
            422,
        ),
        ({"fileName": "gif.png", "fileType": "image/png", "fileSize": 43}, b"GIF89a" + b"\x00" * 37, 422),
    ],
    ids=["oversized-body", "text-as-png", "gif-declared-png"],
)
def test_a_lying_upload_is_rejected_at_completion_and_its_object_deleted(
    local_stack, declared, body, status
) -> None:
    done, image_id = _lie(local_stack, declared, body)
    assert done.status_code == status, done.text
    assert done.json()["error"]
    doctor = local_stack.imgup("doctor", "--json")
    assert doctor.code == 0, doctor.stderr
    assert doctor.json()["problems"] == []
    listed = local_stack.imgup("list", "--all", "--json").json()
    assert image_id not in {i["imageId"] for i in listed}


def test_a_body_that_does_not_match_its_declared_checksum_is_rejected(local_stack) -> None:
    real = png_bytes(200)
    forged = png_bytes(200)[:-20] + b"\x01" * 20
    declared = {
        "fileName": "sum.png",
        "fileType": "image/png",
        "fileSize": len(forged),
        "sha256": hashlib.sha256(real).hexdigest(),
    }
    done, image_id = _lie(local_stack, declared, forged)
    assert done.status_code == 422 and "checksum" in done.json()["error"].lower()
    assert image_id not in {i["imageId"] for i in local_stack.imgup("list", "--all", "--json").json()}
