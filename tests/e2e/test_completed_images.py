"""End to end, over HTTP against the local stack: a completed image stays what its record
promises whatever is PUT later with its still-valid upload URL, and ``imgup doctor`` notices an
object that differs from its record."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import boto3
import httpx
import pytest
from botocore.config import Config

from tests.samples import jpeg_bytes, png_bytes

pytestmark = pytest.mark.e2e


def _s3(local_stack) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=local_stack.endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="imgup-local",
        aws_secret_access_key="imgup-local",
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
    )


@pytest.fixture(scope="module")
def versioned(local_stack):
    """The local stack, whose bucket must keep versions as infra.yaml's does."""
    status = _s3(local_stack).get_bucket_versioning(Bucket=local_stack.bucket).get("Status")
    if status != "Enabled":
        pytest.skip(
            "the local stack's bucket is not versioned as infra.yaml says (moto's CloudFormation "
            "ignores VersioningConfiguration; the local stack must turn it on)"
        )
    return local_stack


def _eventually(condition: Callable[[], Any], what: str, attempts: int = 150) -> Any:
    """Wait for the local stack's asynchronous S3 event to have run (bounded, not timed)."""
    for _ in range(attempts):
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"{what} never happened")


def _api(local_stack, method: str, path: str, **kwargs: Any) -> httpx.Response:
    headers = {"x-api-key": local_stack.api_key}
    return httpx.request(method, local_stack.api_url + path, headers=headers, timeout=30, **kwargs)


def _listed(local_stack, image_id: str) -> dict | None:
    images = _api(local_stack, "GET", "/images").json()["images"]
    return next((image for image in images if image["imageId"] == image_id), None)


def _versions(local_stack, key: str) -> list[str]:
    answer = _s3(local_stack).list_object_versions(Bucket=local_stack.bucket, Prefix=key)
    return [v["VersionId"] for v in answer.get("Versions", []) if v["Key"] == key]


def test_a_declared_size_over_the_limit_is_400_as_the_original_api_answered(local_stack) -> None:
    answer = _api(
        local_stack,
        "POST",
        "/upload",
        json={"fileName": "big.jpg", "fileType": "image/jpeg", "fileSize": 6 * 1024 * 1024},
    )
    assert answer.status_code == 400
    assert "exceeds the limit" in answer.json()["error"]


def test_a_second_put_after_completion_changes_nothing_the_original_client_sees(versioned) -> None:
    original = jpeg_bytes(4096, width=64, height=48)
    other = original.replace(b"\x00" * 64, b"\x01" * 64)  # a valid JPEG, same length, other bytes
    assert len(other) == len(original) and other != original

    # The original client: POST /upload without sha256, PUT with Content-Type, nothing else.
    grant = _api(
        versioned,
        "POST",
        "/upload",
        json={"fileName": "profile.jpg", "fileType": "image/jpeg", "fileSize": len(original)},
    ).json()
    put = httpx.put(grant["uploadUrl"], content=original, headers={"Content-Type": "image/jpeg"})
    assert put.status_code == 200
    image = _eventually(lambda: _listed(versioned, grant["imageId"]), "the upload being listed")
    assert (image["width"], image["height"]) == (64, 48)
    assert httpx.get(image["fileUrl"]).content == original
    key = _s3(versioned).list_objects_v2(Bucket=versioned.bucket, Prefix=f"images/{grant['imageId']}/")[
        "Contents"
    ][0]["Key"]
    (verified,) = _versions(versioned, key)

    # Within the URL's lifetime, other bytes of the same length, the same way.
    again = httpx.put(grant["uploadUrl"], content=other, headers={"Content-Type": "image/jpeg"})
    assert again.status_code == 200
    _eventually(lambda: _versions(versioned, key) == [verified], "the later version being removed")

    image = _listed(versioned, grant["imageId"])
    assert image is not None, "the completed image left the gallery"
    assert image["fileSize"] == len(original)
    assert httpx.get(image["fileUrl"]).content == original
    shown = _api(versioned, "GET", f"/images/{grant['imageId']}").json()
    assert httpx.get(shown["fileUrl"]).content == original
    assert httpx.get(grant["fileUrl"]).content == original  # the URL the upload answer gave
    doctor = versioned.imgup("doctor", "--json")
    assert doctor.code == 0, doctor.stdout + doctor.stderr
    assert doctor.json()["problems"] == []


def test_doctor_finds_objects_that_differ_from_their_records(versioned, tmp_path) -> None:
    paths = []
    for n in range(3):
        path = tmp_path / f"tampered-{n}.png"
        path.write_bytes(png_bytes(300 + n))
        paths.append(str(path))
    uploaded = versioned.imgup("upload", *paths, "--jsonl")
    assert uploaded.code == 0, uploaded.stderr
    ids = [line["imageId"] for line in uploaded.json_lines()]
    healthy = versioned.imgup("doctor", "--json")
    assert healthy.code == 0, healthy.stdout + healthy.stderr

    s3 = _s3(versioned)
    dynamodb = boto3.client(
        "dynamodb",
        endpoint_url=versioned.endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="imgup-local",
        aws_secret_access_key="imgup-local",
    )
    records = [
        dynamodb.get_item(TableName=versioned.table, Key={"imageId": {"S": i}}, ConsistentRead=True)["Item"]
        for i in ids
    ]
    # 1: its verified version deleted; 2: hidden behind a delete marker; 3: the record lies.
    gone, hidden, lied = records
    s3.delete_object(Bucket=versioned.bucket, Key=gone["s3Key"]["S"], VersionId=gone["versionId"]["S"])
    s3.delete_object(Bucket=versioned.bucket, Key=hidden["s3Key"]["S"])
    dynamodb.update_item(
        TableName=versioned.table,
        Key={"imageId": lied["imageId"]},
        UpdateExpression="SET sha256 = :sha",
        ExpressionAttributeValues={":sha": {"S": "0" * 64}},
    )

    doctor = versioned.imgup("doctor", "--json")
    assert doctor.code == 1
    found = {(p["kind"], p["subject"]) for p in doctor.json()["problems"]}
    assert found == {("missing-object", ids[0]), ("not-current", ids[1]), ("checksum-mismatch", ids[2])}
    for image_id in ids:
        assert image_id in doctor.stderr
    assert versioned.imgup("delete", "--yes", *ids).code == 0
    assert versioned.imgup("doctor").code == 0
