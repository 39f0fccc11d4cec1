"""Where imgup's local stack follows AWS S3 and LocalStack is laxer: an unknown access key, an
expiry beyond a week, two auth mechanisms at once, a URL dated ahead of the server's clock,
a body that stops short. These run against the local stack only (see test_presigned_put.py
for the expectations both share)."""

from __future__ import annotations

import datetime as dt
import socket
import uuid
from urllib.parse import urlsplit
from xml.etree import ElementTree

import httpx
import pytest

from imgup.backend.storage import presign_upload
from tests.strict_s3.test_presigned_put import (
    BODY,
    CONTENT_TYPE,
    assert_accepted,
    assert_refused,
    stored,
    with_query,
)

pytestmark = pytest.mark.strict_s3


@pytest.fixture(scope="module")
def local_s3(imgup_local):
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=imgup_local.endpoint,
        region_name="us-east-1",
        aws_access_key_id=imgup_local.access_key,
        aws_secret_access_key=imgup_local.secret_key,
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
    )


@pytest.fixture(scope="module")
def bucket(local_s3) -> str:
    name = f"imgup-local-{uuid.uuid4().hex[:12]}"
    local_s3.create_bucket(Bucket=name)
    return name


@pytest.fixture()
def http():
    with httpx.Client(trust_env=False, timeout=30.0) as client:
        yield client


@pytest.fixture()
def key() -> str:
    return f"images/{uuid.uuid4()}/photo.png"


def presign(s3, bucket: str, key: str, **extra) -> tuple[str, dict[str, str]]:
    return presign_upload(
        s3,
        bucket=bucket,
        key=key,
        content_type=CONTENT_TYPE,
        content_length=len(BODY),
        sha256_hex=None,
        expires_in=300,
        **extra,
    )


def code_of(response: httpx.Response) -> tuple[int, str]:
    root = ElementTree.fromstring(response.content)  # noqa: S314  (a local test server's answer)
    return response.status_code, root.findtext("Code") or ""


def test_a_url_signed_with_a_key_the_stack_does_not_know_is_refused(local_s3, bucket, key, http):
    import boto3
    from botocore.config import Config

    stranger = boto3.client(
        "s3",
        endpoint_url=local_s3.meta.endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="AKIASTRANGER",
        aws_secret_access_key="not-the-local-secret",
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
    )
    url, headers = presign(stranger, bucket, key)

    response = http.put(url, headers=headers, content=BODY)

    assert code_of(response) == (403, "InvalidAccessKeyId")
    assert_refused(response, local_s3, bucket, key)


def test_an_expiry_beyond_a_week_is_refused_before_the_signature_is_checked(local_s3, bucket, key, http):
    url, headers = presign(local_s3, bucket, key)

    response = http.put(with_query(url, **{"X-Amz-Expires": "604801"}), headers=headers, content=BODY)

    assert code_of(response) == (400, "AuthorizationQueryParametersError")
    assert "604800" in response.text


def test_a_presigned_put_that_also_carries_an_authorization_header_is_refused(local_s3, bucket, key, http):
    url, headers = presign(local_s3, bucket, key)

    response = http.put(url, headers={**headers, "Authorization": "AWS4-HMAC-SHA256 x"}, content=BODY)

    assert code_of(response) == (400, "InvalidArgument")
    assert_refused(response, local_s3, bucket, key)


@pytest.mark.parametrize("ahead, accepted", [(5, True), (20, False)])
def test_a_url_signed_by_a_clock_ahead_is_accepted_within_fifteen_minutes(
    local_s3, bucket, key, http, monkeypatch, ahead, accepted
):
    import botocore.auth

    future = dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=ahead)
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: future.replace(tzinfo=None))
    url, headers = presign(local_s3, bucket, key)

    response = http.put(url, headers=headers, content=BODY)

    if accepted:
        assert_accepted(response, local_s3, bucket, key)
    else:
        assert code_of(response) == (403, "AccessDenied") and "not yet valid" in response.text


def test_a_body_shorter_than_its_content_length_gets_an_s3_error_not_a_hang(
    imgup_local, local_s3, bucket, key
):
    url, headers = presign(local_s3, bucket, key)
    parts = urlsplit(url)
    head = (
        f"PUT {parts.path}?{parts.query} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
        f"Content-Type: {CONTENT_TYPE}\r\nContent-Length: {len(BODY)}\r\n\r\n"
    )
    with socket.create_connection((parts.hostname, parts.port), timeout=60) as sock:
        sock.sendall(head.encode() + BODY[:10])
        sock.shutdown(socket.SHUT_WR)  # the client is done: the body ends 10 bytes in
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk

    status_line, _, rest = answer.partition(b"\r\n")
    assert status_line.split()[1] == b"400"
    assert b"<Code>IncompleteBody</Code>" in rest
    assert stored(local_s3, bucket, key) is None
