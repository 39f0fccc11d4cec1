"""The backend's presigned PUT URLs against a strict S3: imgup's local stack, and LocalStack
with signature validation on (each test runs against both, see conftest.py).

moto accepts any body for a presigned URL; this tier proves that an S3 that enforces SigV4
refuses every lie a client can tell with a URL from the backend's `Presigner`, and accepts the honest
upload made with exactly the headers the backend returned. Each refusal is followed by a check
that nothing was stored and, where the URL is still valid, by the honest upload through the same
URL, so a refusal can only be blamed on the lie.
"""

from __future__ import annotations

import base64
import hashlib
import time
import uuid
from collections.abc import Callable
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit
from xml.etree import ElementTree

import httpx
import pytest
from botocore.exceptions import ClientError

from imgup.backend.storage import Presigner

pytestmark = pytest.mark.strict_s3

# A small but real PNG: signature, IHDR, IDAT and IEND chunks, plus padding to a round size.
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489"
    "0000000d49444154789c6360f8cfc0f01f0005000201e8f1a5e60000000049454e44ae426082"
)
BODY = PNG + bytes(range(256)) * 4
BODY_SHA256 = hashlib.sha256(BODY).hexdigest()
CONTENT_TYPE = "image/png"
EXPIRY_S = 300


def presign(
    s3,
    bucket: str,
    key: str,
    *,
    sha256: bool = False,
    expires_in: int = EXPIRY_S,
    body: bytes = BODY,
    content_type: str = CONTENT_TYPE,
    clock: Callable[[], float] = time.time,
) -> tuple[str, dict[str, str]]:
    # As the handlers presign: the credentials the client signs with (a Lambda's own).
    return Presigner(s3, s3._request_signer._credentials, bucket, clock=clock).upload(
        key,
        content_type=content_type,
        content_length=len(body),
        sha256_hex=hashlib.sha256(body).hexdigest() if sha256 else None,
        expires_in=expires_in,
    )


def lie(headers: dict[str, str], *, drop: tuple[str, ...] = (), **replace: str) -> httpx.Headers:
    """The returned headers with some replaced or left out. Content-Length is always left to
    httpx, so it is the true length of whatever body is sent (a different body, a different
    length: the lie a client tells by sending another file)."""
    result = httpx.Headers(headers)
    for name in ("content-length", *drop):
        result.pop(name, None)
    for name, value in replace.items():
        result[name.replace("_", "-")] = value
    return result


def stored(s3, bucket: str, key: str) -> bytes | None:
    try:
        return s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except ClientError as exc:
        if exc.response["Error"]["Code"] in {"NoSuchKey", "404"}:
            return None
        raise


def assert_refused(
    response: httpx.Response, s3, bucket: str, *keys: str, error: tuple[int, str] | None = None
) -> None:
    """A 4xx, nothing stored, and, given ``error``, S3's status and error code in S3's XML."""
    assert 400 <= response.status_code < 500, (
        f"strict S3 accepted a lying upload: HTTP {response.status_code} {response.text[:500]}"
    )
    if error is not None:
        assert (response.status_code, error_code(response)) == error, response.text[:500]
    for key in keys:
        assert stored(s3, bucket, key) is None, f"{key} exists after a refused upload"


def error_code(response: httpx.Response) -> str:
    root = ElementTree.fromstring(response.content)  # noqa: S314  (a local test server's answer)
    assert root.tag == "Error" and root.findtext("Message"), response.text[:500]
    return root.findtext("Code") or ""


def assert_accepted(response: httpx.Response, s3, bucket: str, key: str, body: bytes = BODY):
    assert response.status_code == 200, f"HTTP {response.status_code} {response.text[:500]}"
    assert stored(s3, bucket, key) == body


def with_query(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    query.update(changes)
    return urlunsplit(parts._replace(query=urlencode(query)))


def test_the_url_points_at_the_strict_s3_and_the_headers_name_type_length_and_checksum(
    s3, bucket, key, strict_s3
):
    url, headers = presign(s3, bucket, key, sha256=True)
    sent = httpx.Headers(headers)

    assert url.startswith(f"{strict_s3.endpoint}/{bucket}/")
    assert sent["content-type"] == CONTENT_TYPE
    assert sent["content-length"] == str(len(BODY))
    assert sent["x-amz-checksum-sha256"] == base64.b64encode(bytes.fromhex(BODY_SHA256)).decode()


def test_the_honest_upload_with_exactly_the_returned_headers_is_accepted(s3, bucket, key, http):
    url, headers = presign(s3, bucket, key)

    assert_accepted(http.put(url, headers=headers, content=BODY), s3, bucket, key)


def test_the_honest_upload_with_a_signed_checksum_is_accepted_and_stores_the_exact_bytes(
    s3, bucket, key, http
):
    url, headers = presign(s3, bucket, key, sha256=True)

    assert_accepted(http.put(url, headers=headers, content=BODY), s3, bucket, key)
    head = s3.head_object(Bucket=bucket, Key=key)
    assert head["ContentLength"] == len(BODY)
    assert head["ContentType"] == CONTENT_TYPE


def test_a_different_content_type_than_the_signed_one_is_refused(s3, bucket, key, http):
    url, headers = presign(s3, bucket, key)

    for claimed in ("image/jpeg", "text/html", "image/svg+xml"):
        response = http.put(url, headers=lie(headers, content_type=claimed), content=BODY)
        assert_refused(response, s3, bucket, key, error=(403, "SignatureDoesNotMatch"))
    assert_accepted(http.put(url, headers=headers, content=BODY), s3, bucket, key)


def test_leaving_out_the_signed_content_type_is_refused(s3, bucket, key, http):
    url, headers = presign(s3, bucket, key)

    response = http.put(url, headers=lie(headers, drop=("content-type",)), content=BODY)

    assert_refused(response, s3, bucket, key, error=(403, "SignatureDoesNotMatch"))
    assert_accepted(http.put(url, headers=headers, content=BODY), s3, bucket, key)


def test_a_body_longer_than_the_signed_length_is_refused(s3, bucket, key, http):
    url, headers = presign(s3, bucket, key)

    response = http.put(url, headers=lie(headers), content=BODY + b"<script>")

    assert_refused(response, s3, bucket, key, error=(403, "SignatureDoesNotMatch"))
    assert_accepted(http.put(url, headers=headers, content=BODY), s3, bucket, key)


def test_a_body_shorter_than_the_signed_length_is_refused(s3, bucket, key, http):
    url, headers = presign(s3, bucket, key)

    response = http.put(url, headers=lie(headers), content=BODY[:-1])

    assert_refused(response, s3, bucket, key, error=(403, "SignatureDoesNotMatch"))
    assert_accepted(http.put(url, headers=headers, content=BODY), s3, bucket, key)


def test_a_much_larger_body_than_the_signed_length_is_refused(s3, bucket, key, http):
    url, headers = presign(s3, bucket, key)

    response = http.put(url, headers=lie(headers), content=BODY * 64)

    assert_refused(response, s3, bucket, key, error=(403, "SignatureDoesNotMatch"))


def test_an_expired_url_is_refused(s3, bucket, key, http):
    url, headers = presign(s3, bucket, key, expires_in=1)
    signed_at = time.time()

    # X-Amz-Date has whole seconds: two seconds after signing, a 1 s URL is certainly past.
    time.sleep(max(0.0, signed_at + 2.1 - time.time()))
    response = http.put(url, headers=headers, content=BODY)

    assert_refused(response, s3, bucket, key, error=(403, "AccessDenied"))
    assert "Request has expired" in response.text


def test_a_url_whose_expiry_was_extended_by_hand_is_refused(s3, bucket, key, http):
    url, headers = presign(s3, bucket, key, expires_in=1)
    stretched = with_query(url, **{"X-Amz-Expires": "604800"})

    response = http.put(stretched, headers=headers, content=BODY)

    assert_refused(response, s3, bucket, key, error=(403, "SignatureDoesNotMatch"))


def test_a_url_whose_key_was_changed_is_refused(s3, bucket, key, http):
    url, headers = presign(s3, bucket, key)
    other_key = key.replace("photo.png", "other.png")
    parts = urlsplit(url)
    assert parts.path.endswith("/photo.png")
    changed = urlunsplit(parts._replace(path=parts.path[: -len("photo.png")] + "other.png"))

    response = http.put(changed, headers=headers, content=BODY)

    assert_refused(response, s3, bucket, key, other_key, error=(403, "SignatureDoesNotMatch"))
    assert_accepted(http.put(url, headers=headers, content=BODY), s3, bucket, key)


def test_a_url_moved_to_another_images_folder_is_refused(s3, bucket, key, http):
    url, headers = presign(s3, bucket, key)
    image_id = key.split("/")[1]
    other_id = str(uuid.uuid4())
    changed = url.replace(f"/{image_id}/", f"/{other_id}/", 1)
    assert changed != url

    response = http.put(changed, headers=headers, content=BODY)

    assert_refused(
        response, s3, bucket, key, key.replace(image_id, other_id), error=(403, "SignatureDoesNotMatch")
    )


def test_a_body_that_differs_from_the_signed_sha256_is_refused(s3, bucket, key, http):
    url, headers = presign(s3, bucket, key, sha256=True)
    forged = BODY[:-4] + b"EVIL"  # the same length, other bytes
    assert len(forged) == len(BODY)

    response = http.put(url, headers=headers, content=forged)

    assert_refused(response, s3, bucket, key, error=(400, "BadDigest"))
    assert_accepted(http.put(url, headers=headers, content=BODY), s3, bucket, key)


def test_a_checksum_header_recomputed_for_a_different_body_is_refused(s3, bucket, key, http):
    url, headers = presign(s3, bucket, key, sha256=True)
    forged = BODY[:-4] + b"EVIL"
    forged_checksum = base64.b64encode(hashlib.sha256(forged).digest()).decode()

    response = http.put(url, headers=lie(headers, x_amz_checksum_sha256=forged_checksum), content=forged)

    assert_refused(response, s3, bucket, key, error=(403, "SignatureDoesNotMatch"))


def test_leaving_out_the_signed_checksum_header_is_refused(s3, bucket, key, http):
    url, headers = presign(s3, bucket, key, sha256=True)

    response = http.put(url, headers=lie(headers, drop=("x-amz-checksum-sha256",)), content=BODY)

    assert_refused(response, s3, bucket, key, error=(403, "SignatureDoesNotMatch"))
    assert_accepted(http.put(url, headers=headers, content=BODY), s3, bucket, key)


def test_an_unsigned_x_amz_header_is_refused_and_named(s3, bucket, key, http):
    url, headers = presign(s3, bucket, key)

    response = http.put(url, headers=lie(headers, x_amz_meta_owner="mallory"), content=BODY)

    assert_refused(response, s3, bucket, key, error=(403, "AccessDenied"))
    refusal = ElementTree.fromstring(response.content)  # noqa: S314
    assert refusal.findtext("HeadersNotSigned") == "x-amz-meta-owner"
    assert_accepted(http.put(url, headers=headers, content=BODY), s3, bucket, key)


def test_a_checksum_header_added_to_an_unchecksummed_url_is_refused_as_unsigned(s3, bucket, key, http):
    url, headers = presign(s3, bucket, key)
    forged = BODY[:-4] + b"EVIL"
    checksum = base64.b64encode(hashlib.sha256(forged).digest()).decode()

    response = http.put(url, headers=lie(headers, x_amz_checksum_sha256=checksum), content=forged)

    assert_refused(response, s3, bucket, key, error=(403, "AccessDenied"))


def test_a_content_md5_that_does_not_match_the_body_is_refused(s3, bucket, key, http):
    url, headers = presign(s3, bucket, key)
    wrong = base64.b64encode(hashlib.md5(b"other").digest()).decode()  # noqa: S324

    response = http.put(url, headers=lie(headers, content_md5=wrong), content=BODY)

    assert_refused(response, s3, bucket, key, error=(400, "BadDigest"))
    right = base64.b64encode(hashlib.md5(BODY).digest()).decode()  # noqa: S324
    assert_accepted(http.put(url, headers=lie(headers, content_md5=right), content=BODY), s3, bucket, key)


def test_a_url_without_its_expiry_is_refused_as_malformed(s3, bucket, key, http):
    url, headers = presign(s3, bucket, key)
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "X-Amz-Expires"]

    response = http.put(urlunsplit(parts._replace(query=urlencode(query))), headers=headers, content=BODY)

    assert_refused(response, s3, bucket, key, error=(400, "AuthorizationQueryParametersError"))


def test_a_key_with_spaces_plus_and_non_ascii_signs_and_stores_as_s3_does(s3, bucket, http):
    key = f"images/{uuid.uuid4()}/a b+c ü~(1).png"
    url, headers = presign(s3, bucket, key)

    assert_accepted(http.put(url, headers=headers, content=BODY), s3, bucket, key)


def test_the_stored_sha256_comes_back_with_checksum_mode(s3, bucket, key, http):
    url, headers = presign(s3, bucket, key, sha256=True)
    expected = base64.b64encode(bytes.fromhex(BODY_SHA256)).decode()

    put = http.put(url, headers=headers, content=BODY)

    assert put.status_code == 200 and put.headers["x-amz-checksum-sha256"] == expected
    assert put.headers["etag"].strip('"') == hashlib.md5(BODY).hexdigest()  # noqa: S324
    assert s3.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")["ChecksumSHA256"] == expected
    got = s3.get_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
    assert got["ChecksumSHA256"] == expected and got["Body"].read() == BODY


def test_each_honest_put_to_a_versioned_bucket_makes_a_version(s3, http):
    versioned = f"imgup-strict-v-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=versioned)
    s3.put_bucket_versioning(Bucket=versioned, VersioningConfiguration={"Status": "Enabled"})
    key = f"images/{uuid.uuid4()}/photo.png"
    other = BODY[:-4] + b"NEXT"
    first_url, first_headers = presign(s3, versioned, key)
    second_url, second_headers = presign(s3, versioned, key, body=other)

    first = http.put(first_url, headers=first_headers, content=BODY)
    second = http.put(second_url, headers=second_headers, content=other)

    assert first.status_code == second.status_code == 200
    ids = [first.headers["x-amz-version-id"], second.headers["x-amz-version-id"]]
    assert ids[0] != ids[1]
    listed = s3.list_object_versions(Bucket=versioned, Prefix=key)["Versions"]
    assert sorted(v["VersionId"] for v in listed) == sorted(ids)
    assert s3.get_object(Bucket=versioned, Key=key, VersionId=ids[0])["Body"].read() == BODY
    assert s3.get_object(Bucket=versioned, Key=key)["Body"].read() == other
