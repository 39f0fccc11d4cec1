"""Where imgup's local stack follows AWS S3 and LocalStack is laxer: an unknown access key, an
expiry beyond a week, two auth mechanisms at once, a URL dated ahead of the server's clock,
a body that stops short. These run against the local stack only (see test_presigned_put.py
for the expectations both share)."""

from __future__ import annotations

import datetime as dt
import socket
from urllib.parse import urlsplit
from xml.etree import ElementTree

import httpx
import pytest

from tests.strict_s3.test_presigned_put import (
    BODY,
    CONTENT_TYPE,
    assert_accepted,
    assert_refused,
    presign,
    stored,
    with_query,
)

pytestmark = pytest.mark.strict_s3


@pytest.fixture(scope="module")
def s3(imgup_local):
    """Only the local stack here (the shared fixture of that name runs against both)."""
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


@pytest.fixture()
def http():
    with httpx.Client(trust_env=False, timeout=30.0) as client:
        yield client


def code_of(response: httpx.Response) -> tuple[int, str]:
    root = ElementTree.fromstring(response.content)  # noqa: S314  (a local test server's answer)
    return response.status_code, root.findtext("Code") or ""


def test_a_url_signed_with_a_key_the_stack_does_not_know_is_refused(s3, bucket, key, http):
    import boto3
    from botocore.config import Config

    stranger = boto3.client(
        "s3",
        endpoint_url=s3.meta.endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="AKIASTRANGER",
        aws_secret_access_key="not-the-local-secret",
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
    )
    url, headers = presign(stranger, bucket, key)

    response = http.put(url, headers=headers, content=BODY)

    assert code_of(response) == (403, "InvalidAccessKeyId")
    assert_refused(response, s3, bucket, key)


def test_an_expiry_beyond_a_week_is_refused_before_the_signature_is_checked(s3, bucket, key, http):
    url, headers = presign(s3, bucket, key)

    response = http.put(with_query(url, **{"X-Amz-Expires": "604801"}), headers=headers, content=BODY)

    assert code_of(response) == (400, "AuthorizationQueryParametersError")
    assert "604800" in response.text


def test_a_presigned_put_that_also_carries_an_authorization_header_is_refused(s3, bucket, key, http):
    url, headers = presign(s3, bucket, key)

    response = http.put(url, headers={**headers, "Authorization": "AWS4-HMAC-SHA256 x"}, content=BODY)

    assert code_of(response) == (400, "InvalidArgument")
    assert_refused(response, s3, bucket, key)


@pytest.mark.parametrize("ahead, accepted", [(5, True), (20, False)])
def test_a_url_signed_by_a_clock_ahead_is_accepted_within_fifteen_minutes(
    s3, bucket, key, http, ahead, accepted
):
    future = dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=ahead)
    url, headers = presign(s3, bucket, key, clock=future.timestamp)

    response = http.put(url, headers=headers, content=BODY)

    if accepted:
        assert_accepted(response, s3, bucket, key)
    else:
        assert code_of(response) == (403, "AccessDenied") and "not yet valid" in response.text


def test_a_body_shorter_than_its_content_length_gets_an_s3_error_not_a_hang(imgup_local, s3, bucket, key):
    url, headers = presign(s3, bucket, key)
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
    assert stored(s3, bucket, key) is None
