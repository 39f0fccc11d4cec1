"""Unit tests of the presigned URLs that the backend generates: what they sign, and for how long.

moto enforces none of this (DESIGN.md), so the URL itself is inspected; the strict-S3 tier
proves that a real S3 implementation refuses what these URLs do not allow.
"""

from __future__ import annotations

import base64
import functools
import hashlib
from urllib.parse import parse_qs, urlsplit

import boto3
import pytest

from imgup.backend import storage
from imgup.backend.settings import Settings
from tests.backend import botocore_presign

CONTENT = b"\x89PNG\r\n\x1a\n" + b"\x00" * 100
DIGEST = hashlib.sha256(CONTENT).hexdigest()


@functools.cache
def s3_client(endpoint_url: str | None = None, region: str = "us-east-1"):
    session = boto3.session.Session(
        aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="secret", region_name=region
    )
    return storage.make_s3_client(session, endpoint_url=endpoint_url)


def presign(**overrides):
    arguments = {
        "bucket": "imgup-bucket",
        "key": "images/0b7e2c1e-8a4f-4d7a-9c55-2f0a5f1b3c4d/a.png",
        "content_type": "image/png",
        "content_length": len(CONTENT),
        "expires_in": 300,
    }
    arguments.update(overrides)
    s3 = arguments.pop("s3", None) or s3_client()
    signer = storage.Presigner(s3, s3._request_signer._credentials, arguments.pop("bucket"))
    return signer.upload(arguments.pop("key"), **arguments)


def query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def test_the_upload_url_is_sigv4_and_signs_type_length_and_host() -> None:
    url, headers = presign()
    params = query(url)
    assert params["X-Amz-Algorithm"] == "AWS4-HMAC-SHA256"
    assert params["X-Amz-SignedHeaders"] == "content-length;content-type;host"
    assert "X-Amz-Signature" in params
    assert headers == {"Content-Type": "image/png", "Content-Length": str(len(CONTENT))}


def test_a_declared_checksum_is_signed_and_sent_in_base64() -> None:
    url, headers = presign(sha256_hex=DIGEST)
    signed = query(url)["X-Amz-SignedHeaders"].split(";")
    assert signed == ["content-length", "content-type", "host", "x-amz-checksum-sha256"]
    expected = base64.b64encode(hashlib.sha256(CONTENT).digest()).decode()
    assert headers["x-amz-checksum-sha256"] == expected


def test_the_url_expires_after_the_configured_seconds() -> None:
    assert query(presign(expires_in=300)[0])["X-Amz-Expires"] == "300"
    assert query(presign(expires_in=60)[0])["X-Amz-Expires"] == "60"


def test_the_default_expiry_of_the_template_is_at_most_300_seconds() -> None:
    settings = Settings.from_environ({"TABLE_NAME": "t", "BUCKET_NAME": "b"})
    assert settings.url_expiry_seconds <= 300
    url, _ = presign(expires_in=settings.url_expiry_seconds)
    assert int(query(url)["X-Amz-Expires"]) <= 300


@pytest.mark.parametrize("expires_in", [0, -5, 7 * 24 * 3600 + 1])
def test_an_expiry_outside_what_sigv4_allows_is_refused(expires_in: int) -> None:
    with pytest.raises(ValueError):
        presign(expires_in=expires_in)


def test_a_malformed_checksum_is_refused_before_signing() -> None:
    with pytest.raises(ValueError):
        presign(sha256_hex="not-a-digest")


def test_no_sdk_checksum_sneaks_into_the_signature() -> None:
    url, _ = presign()
    params = query(url)
    assert not any("checksum" in name.lower() for name in params)
    assert "x-amz-sdk-checksum-algorithm" not in url.lower()


def test_with_an_endpoint_the_url_is_path_style_on_that_endpoint() -> None:
    url, _ = presign(s3=s3_client("http://127.0.0.1:4566"))
    parts = urlsplit(url)
    assert (parts.scheme, parts.netloc) == ("http", "127.0.0.1:4566")
    assert parts.path.startswith("/imgup-bucket/images/")


def test_in_us_east_1_the_url_is_still_sigv4() -> None:
    # boto3 presigns with SigV2 in us-east-1 unless told otherwise (DESIGN.md).
    url, _ = presign(s3=s3_client(region="us-east-1"))
    assert "AWSAccessKeyId=" not in url
    assert query(url)["X-Amz-Algorithm"] == "AWS4-HMAC-SHA256"


def test_the_download_url_is_sigv4_and_fixes_the_answered_type() -> None:
    s3 = s3_client()
    signer = storage.Presigner(s3, s3._request_signer._credentials, "b-b-b")
    url = signer.download_url("images/x/a.png", expires_in=3600, content_type="image/png")
    params = query(url)
    assert params["X-Amz-Algorithm"] == "AWS4-HMAC-SHA256"
    assert params["X-Amz-Expires"] == "3600"
    assert params["response-content-type"] == "image/png"


def test_an_older_botocore_without_the_checksum_options_still_gets_a_sigv4_config(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real_config = storage.Config

    def old_config(**kwargs):
        if {"request_checksum_calculation", "response_checksum_validation"} & set(kwargs):
            raise TypeError("Got unexpected keyword argument 'request_checksum_calculation'")
        return real_config(**kwargs)

    monkeypatch.setattr(storage, "Config", old_config)
    config = storage.s3_config("http://127.0.0.1:4566")
    assert config.signature_version == "s3v4"
    assert config.s3 == {"addressing_style": "path"}


ENDPOINTS = pytest.mark.parametrize(
    ("endpoint", "region", "token"),
    [
        (None, "us-east-1", None),
        (None, "eu-west-1", "session-token/with+chars="),
        ("http://127.0.0.1:4566", "us-east-1", "t"),
        ("https://s3.example.test:8443", "ap-southeast-2", None),
    ],
    ids=["aws-us-east-1", "aws-eu-west-1-with-session-token", "local-endpoint", "endpoint-with-port"],
)
KEYS = pytest.mark.parametrize(
    "key",
    [
        "images/0b7e2c1e-8a4f-4d7a-9c55-2f0a5f1b3c4d/My_photo-1.final.jpeg",
        "images/0b7e2c1e-8a4f-4d7a-9c55-2f0a5f1b3c4d/a b+c=d&e%f~g (1) \u00fc\u6f22.png",
    ],
    ids=["plain", "spaces-and-unicode"],
)


def fast_and_botocore(make_fast, make_slow) -> tuple:
    """The two made within the same second (X-Amz-Date), trying again when the clock ticked."""
    for _ in range(5):
        fast, slow = make_fast(), make_slow()
        if (
            query(fast if isinstance(fast, str) else fast[0])["X-Amz-Date"]
            == query(slow if isinstance(slow, str) else slow[0])["X-Amz-Date"]
        ):
            break
    return fast, slow


def session_and_client(endpoint: str | None, region: str, token: str | None):
    session = boto3.session.Session(
        aws_access_key_id="AKIDEXAMPLE",
        aws_secret_access_key="secret",
        aws_session_token=token,
        region_name=region,
    )
    return session, storage.make_s3_client(session, endpoint_url=endpoint)


@ENDPOINTS
@KEYS
@pytest.mark.parametrize(
    "version_id", [None, "3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY+MTRCxf3vjVBH40Nr8X8gdRQBpUMLUo"]
)
def test_the_presigner_makes_the_same_download_urls_as_botocore(
    endpoint: str | None, region: str, token: str | None, key: str, version_id: str | None
) -> None:
    session, s3 = session_and_client(endpoint, region, token)
    signer = storage.Presigner(s3, session.get_credentials(), "imgup-bucket-123")
    fast, slow = fast_and_botocore(
        lambda: signer.download_url(key, expires_in=3600, content_type="image/jpeg", version_id=version_id),
        lambda: botocore_presign.presign_download(
            s3,
            bucket="imgup-bucket-123",
            key=key,
            expires_in=3600,
            content_type="image/jpeg",
            version_id=version_id,
        ),
    )
    assert fast == slow


@ENDPOINTS
@KEYS
@pytest.mark.parametrize("sha256_hex", [None, DIGEST])
@pytest.mark.parametrize("content_type", ["image/png", "image/jpeg"])
def test_the_presigner_makes_the_same_upload_urls_and_headers_as_botocore(
    endpoint: str | None, region: str, token: str | None, key: str, sha256_hex: str | None, content_type: str
) -> None:
    session, s3 = session_and_client(endpoint, region, token)
    signer = storage.Presigner(s3, session.get_credentials(), "imgup-bucket-123")
    arguments = {"content_type": content_type, "content_length": 123_456, "sha256_hex": sha256_hex}
    fast, slow = fast_and_botocore(
        lambda: signer.upload(key, expires_in=900, **arguments),
        lambda: botocore_presign.presign_upload(
            s3, bucket="imgup-bucket-123", key=key, expires_in=900, **arguments
        ),
    )
    assert fast == slow


def test_the_presigner_signs_with_the_key_of_the_day_it_signs_on() -> None:
    session, s3 = session_and_client("http://127.0.0.1:4566", "us-east-1", None)
    now = [1_796_169_599.0]  # 2026-12-01 23:59:59 UTC
    signer = storage.Presigner(s3, session.get_credentials(), "b-b-b", clock=lambda: now[0])
    before = signer.upload("images/x/a.png", content_type="image/png", content_length=3, expires_in=60)[0]
    now[0] += 2  # the next day: a new signing key (the scope names the day)
    after = signer.upload("images/x/a.png", content_type="image/png", content_length=3, expires_in=60)[0]
    fresh = storage.Presigner(s3, session.get_credentials(), "b-b-b", clock=lambda: now[0])
    assert query(before)["X-Amz-Credential"].split("/")[1] == "20261201"
    assert query(after)["X-Amz-Credential"].split("/")[1] == "20261202"
    assert (
        after == fresh.upload("images/x/a.png", content_type="image/png", content_length=3, expires_in=60)[0]
    )


def test_a_presigned_upload_refuses_a_bad_length_or_digest() -> None:
    session, s3 = session_and_client(None, "us-east-1", None)
    signer = storage.Presigner(s3, session.get_credentials(), "b-b-b")
    for bad in ({"content_length": -1}, {"content_length": True}, {"sha256_hex": "xyz"}):
        arguments = {"content_type": "image/png", "content_length": 3, **bad}
        with pytest.raises(ValueError):
            signer.upload("images/x/a.png", expires_in=60, **arguments)


def test_the_presigner_refuses_a_lifetime_longer_than_sigv4_allows() -> None:
    session = boto3.session.Session(aws_access_key_id="A", aws_secret_access_key="s", region_name="us-east-1")
    signer = storage.Presigner(storage.make_s3_client(session), session.get_credentials(), "b-b-b")
    with pytest.raises(ValueError):
        signer.download_url("images/x/a.png", expires_in=storage.MAX_PRESIGN_SECONDS + 1)
    with pytest.raises(ValueError):
        signer.upload(
            "images/x/a.png",
            content_type="image/png",
            content_length=3,
            expires_in=storage.MAX_PRESIGN_SECONDS + 1,
        )
