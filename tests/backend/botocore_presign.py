"""botocore's own presigning, one URL at a time: the reference that ``storage.Presigner`` is
held equal to, byte for byte (test_backend_presign.py). The backend does not ship it."""

from __future__ import annotations

from typing import Any

from imgup.backend.storage import _check_expiry, _upload_headers


def presign_upload(
    s3: Any,
    *,
    bucket: str,
    key: str,
    content_type: str,
    content_length: int,
    sha256_hex: str | None = None,
    expires_in: int,
) -> tuple[str, dict[str, str]]:
    """botocore's presigned PUT for these arguments, and the headers the upload must send."""
    headers = _upload_headers(content_type, content_length, sha256_hex)
    params: dict[str, Any] = {
        "Bucket": bucket,
        "Key": key,
        "ContentType": content_type,
        "ContentLength": content_length,
    }
    if sha256_hex is not None:
        params["ChecksumSHA256"] = headers["x-amz-checksum-sha256"]
    url = s3.generate_presigned_url(
        "put_object",
        Params=params,
        ExpiresIn=_check_expiry(expires_in),
        HttpMethod="PUT",
    )
    return url, headers


def presign_download(
    s3: Any,
    *,
    bucket: str,
    key: str,
    expires_in: int,
    content_type: str | None = None,
    version_id: str | None = None,
) -> str:
    """botocore's presigned GET for these arguments."""
    params: dict[str, Any] = {"Bucket": bucket, "Key": key}
    if version_id:
        params["VersionId"] = version_id
    if content_type:
        params["ResponseContentType"] = content_type
    url: str = s3.generate_presigned_url(
        "get_object",
        Params=params,
        ExpiresIn=_check_expiry(expires_in),
        HttpMethod="GET",
    )
    return url
