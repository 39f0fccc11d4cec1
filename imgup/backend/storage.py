"""S3 and DynamoDB for the handlers: client construction, presigned URLs, and the image table.

The S3 client is always SigV4 (boto3 otherwise presigns with SigV2 in us-east-1) and computes
no checksum of its own (``when_required``): a presigned PUT must sign exactly the headers that
the uploader will send, and nothing else. With an endpoint URL (moto, LocalStack) it uses
path-style addressing, which local servers need.

:class:`ImageStore` is the only code that knows the table's layout (docs/internals.md, "Data
model"); every state change is a conditional write, so concurrent completions (the client's
``complete`` call racing the bucket's ObjectCreated event) agree on one outcome.
"""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import hmac
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import quote, urlsplit

from botocore.config import Config
from botocore.exceptions import ClientError

from . import rules

__all__ = [
    "BATCH_GET_SIZE",
    "BATCH_WRITE_SIZE",
    "MAX_PRESIGN_SECONDS",
    "PENDING",
    "READY",
    "READY_INDEX",
    "REJECTED",
    "SHA256_INDEX",
    "Busy",
    "Transition",
    "ImageRecord",
    "ImageStore",
    "ObjectChanged",
    "ObjectContent",
    "ObjectInfo",
    "Presigner",
    "delete_all_versions",
    "delete_object",
    "head_object",
    "make_dynamodb_client",
    "make_s3_client",
    "read_object",
    "read_range",
    "s3_config",
    "version_of",
]

MAX_PRESIGN_SECONDS = 7 * 24 * 3600
"""SigV4's longest presigned URL lifetime."""


def s3_config(endpoint_url: str | None = None) -> Config:
    """The botocore Config for S3 clients: SigV4, no automatic checksums, path style locally."""
    options: dict[str, Any] = {
        "signature_version": "s3v4",
        "s3": {"addressing_style": "path"} if endpoint_url else None,
        "retries": {"mode": "standard", "max_attempts": 3},
    }
    try:
        return Config(
            **options,
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
    except TypeError:
        # botocore before 1.36 (an older Lambda runtime) knows neither option, and neither
        # does it add checksums of its own: the plain SigV4 config is then the same thing.
        return Config(**options)


def make_s3_client(session: Any, *, endpoint_url: str | None = None) -> Any:
    """An S3 client from a boto3 session, configured for presigning (see the module docstring)."""
    return session.client("s3", endpoint_url=endpoint_url or None, config=s3_config(endpoint_url))


def make_dynamodb_client(session: Any, *, endpoint_url: str | None = None) -> Any:
    """A low-level DynamoDB client from a boto3 session."""
    return session.client(
        "dynamodb",
        endpoint_url=endpoint_url or None,
        config=Config(retries={"mode": "standard", "max_attempts": 3}),
    )


def _check_expiry(expires_in: int) -> int:
    if isinstance(expires_in, bool) or not isinstance(expires_in, int):
        raise TypeError("expires_in must be an int")
    if not 1 <= expires_in <= MAX_PRESIGN_SECONDS:
        raise ValueError(f"expires_in must be from 1 to {MAX_PRESIGN_SECONDS} seconds")
    return expires_in


def _upload_headers(content_type: str, content_length: int, sha256_hex: str | None) -> dict[str, str]:
    """The headers a presigned PUT signs and its upload must send."""
    if isinstance(content_length, bool) or not isinstance(content_length, int) or content_length < 0:
        raise ValueError("content_length must be a non-negative int")
    headers = {"Content-Type": content_type, "Content-Length": str(content_length)}
    if sha256_hex is not None:
        digest = bytes.fromhex(rules.validate_sha256(sha256_hex))
        headers["x-amz-checksum-sha256"] = base64.b64encode(digest).decode("ascii")
    return headers


class Presigner:
    """Presigned GETs and PUTs of one bucket's objects: the URLs that botocore's
    ``generate_presigned_url`` makes (tests hold them equal, byte for byte,
    ``tests/backend/botocore_presign.py``), at a tenth of the cost. A batch presigns up to
    100 uploads and a listing up to 1000 downloads per request.

    botocore's ``generate_presigned_url`` resolves the endpoint (its rules engine), runs its
    event hooks and derives the signing key for every URL. Here the endpoint is resolved
    once, from one URL botocore presigns for the bucket, and each URL is that base plus the
    object's key, signed here with SigV4's query-string algorithm (the canonical request of
    botocore's ``S3SigV4QueryAuth``: sorted query, the host and signed headers,
    ``UNSIGNED-PAYLOAD``) and the day's signing key, derived once per day. The credentials are
    read once (a Lambda's do not change while it runs; a Presigner lives for one request).
    """

    def __init__(
        self, s3: Any, credentials: Any, bucket: str, clock: Callable[[], float] = time.time
    ) -> None:
        probe = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "k"}, ExpiresIn=60)
        self._base = probe.split("?", 1)[0][: -len("k")]
        parts = urlsplit(self._base)
        host = parts.hostname or ""
        host = f"[{host}]" if ":" in host else host
        default_port = {"http": 80, "https": 443}.get(parts.scheme)
        self._host = host if parts.port in (None, default_port) else f"{host}:{parts.port}"
        self._path = parts.path
        frozen = credentials.get_frozen_credentials()
        self._access_key, self._secret, self._token = frozen.access_key, frozen.secret_key, frozen.token
        self._region = s3.meta.region_name
        self._clock = clock
        self._keys: dict[str, bytes] = {}

    def download_url(
        self, key: str, *, expires_in: int, content_type: str | None = None, version_id: str | None = None
    ) -> str:
        """A presigned GET URL for an object; ``content_type`` fixes the type S3 answers with,
        and ``version_id`` names the one version it serves (whatever is written to the key
        later)."""
        params = []
        if version_id:
            params.append(("versionId", version_id))
        if content_type:
            params.append(("response-content-type", content_type))
        return self._sign("GET", key, params, {}, expires_in)

    def upload(
        self,
        key: str,
        *,
        content_type: str,
        content_length: int,
        sha256_hex: str | None = None,
        expires_in: int,
    ) -> tuple[str, dict[str, str]]:
        """A presigned SigV4 PUT URL and the exact headers that the upload must send with it.

        The URL signs ``content-type``, ``content-length`` and, when ``sha256_hex`` is given,
        ``x-amz-checksum-sha256`` (the digest in base64, as S3 wants it): S3 refuses a PUT
        whose headers differ, and verifies the body against the signed checksum. It expires
        after ``expires_in`` seconds."""
        headers = _upload_headers(content_type, content_length, sha256_hex)
        return self._sign("PUT", key, [], headers, expires_in), headers

    def _sign(
        self, method: str, key: str, params: list[tuple[str, str]], headers: dict[str, str], expires_in: int
    ) -> str:
        expires_in = _check_expiry(expires_in)
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(self._clock()))
        day = stamp[:8]
        scope = f"{day}/{self._region}/s3/aws4_request"
        signed = {
            "host": self._host,
            **{name.lower(): " ".join(value.split()) for name, value in headers.items()},
        }
        names = sorted(signed)
        signed_names = ";".join(names)
        auth = [
            ("X-Amz-Algorithm", "AWS4-HMAC-SHA256"),
            ("X-Amz-Credential", f"{self._access_key}/{scope}"),
            ("X-Amz-Date", stamp),
            ("X-Amz-Expires", str(expires_in)),
            ("X-Amz-SignedHeaders", signed_names),
        ]
        if self._token is not None:
            auth.append(("X-Amz-Security-Token", self._token))
        pairs = [(quote(name, safe="-_.~"), quote(value, safe="-_.~")) for name, value in (*params, *auth)]
        path = quote(key, safe="/~")
        canonical = "\n".join(
            [
                method,
                self._path + path,
                "&".join(f"{name}={value}" for name, value in sorted(pairs)),
                "".join(f"{name}:{signed[name]}\n" for name in names),
                signed_names,
                "UNSIGNED-PAYLOAD",
            ]
        )
        to_sign = f"AWS4-HMAC-SHA256\n{stamp}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
        signature = hmac.new(self._signing_key(day), to_sign.encode(), hashlib.sha256).hexdigest()
        query = "&".join(f"{name}={value}" for name, value in pairs)
        return f"{self._base}{path}?{query}&X-Amz-Signature={signature}"

    def _signing_key(self, day: str) -> bytes:
        found = self._keys.get(day)
        if found is None:
            found = f"AWS4{self._secret}".encode()
            for part in (day, self._region, "s3", "aws4_request"):
                found = hmac.new(found, part.encode(), hashlib.sha256).digest()
            self._keys = {day: found}
        return found


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _http_status(exc: ClientError) -> int:
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)


def _is_missing(exc: ClientError) -> bool:
    if _error_code(exc) in {"404", "NoSuchKey", "NotFound", "NoSuchVersion"} or _http_status(exc) == 404:
        return True
    # A version id that names a delete marker: 405, with the marker flagged.
    headers = exc.response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
    return _http_status(exc) == 405 and headers.get("x-amz-delete-marker") == "true"


def version_of(value: object) -> str | None:
    """An S3 version id worth pinning or naming in a read: None for none, and for ``null``
    (an unversioned write, which the next write to the key replaces)."""
    return value if isinstance(value, str) and value and value != "null" else None


@dataclass(frozen=True)
class ObjectInfo:
    """What HEAD says about a stored object.

    ``version_id`` is as S3 says it (None in a bucket that never had versioning, ``null`` for
    an object written while it had none); ``checksum_sha256`` is the base64
    SHA-256 that S3 stored with the object (asked for with checksum mode; None when it has
    none).
    """

    size: int
    etag: str
    content_type: str
    version_id: str | None = None
    checksum_sha256: str | None = None


def head_object(
    s3: Any, *, bucket: str, key: str, version_id: str | None = None, checksum: bool = False
) -> ObjectInfo | None:
    """The object's (or one version's) size, ETag, type and version, or None when there is none.

    With ``checksum``, S3 also says the SHA-256 it stored (checksum mode). Without
    ``s3:ListBucket`` real S3 answers 403 instead of 404 for a missing key; that raises, like
    any other error, because it means the permissions are wrong.
    """
    kwargs: dict[str, Any] = {"Bucket": bucket, "Key": key}
    if version_of(version_id):
        kwargs["VersionId"] = version_id
    if checksum:
        kwargs["ChecksumMode"] = "ENABLED"
    try:
        answer = s3.head_object(**kwargs)
    except ClientError as exc:
        if _is_missing(exc):
            return None
        raise
    return ObjectInfo(
        size=int(answer["ContentLength"]),
        etag=str(answer.get("ETag", "")),
        content_type=str(answer.get("ContentType", "")),
        version_id=answer.get("VersionId") or None,
        checksum_sha256=answer.get("ChecksumSHA256") or None,
    )


class ObjectChanged(Exception):
    """The object was replaced between two reads (its ETag changed)."""


@dataclass(frozen=True)
class ObjectContent:
    """What reading an object found: its first bytes (up to rules.PROBE_BYTES, or ``keep``),
    the bytes read, their SHA-256 (hex), and what S3 said of the object: its whole size
    (``length``, which can exceed what was read) and its version."""

    head: bytes
    size: int
    sha256: str
    length: int = 0
    version_id: str | None = None


def _read_kwargs(bucket: str, key: str, etag: str | None, version_id: str | None) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"Bucket": bucket, "Key": key}
    if version_of(version_id):
        kwargs["VersionId"] = version_id
    elif etag:
        kwargs["IfMatch"] = etag
    return kwargs


def _get(s3: Any, kwargs: dict[str, Any], key: str) -> Any:
    try:
        return s3.get_object(**kwargs)
    except ClientError as exc:
        if _is_missing(exc):
            return None
        if _error_code(exc) == "PreconditionFailed" or _http_status(exc) == 412:
            raise ObjectChanged(key) from None
        raise


def read_object(
    s3: Any,
    *,
    bucket: str,
    key: str,
    max_bytes: int,
    etag: str | None = None,
    version_id: str | None = None,
    chunk_size: int = 256 * 1024,
    keep: int = rules.PROBE_BYTES,
) -> ObjectContent | None:
    """Stream an object once: keep its first ``keep`` bytes, count it and hash it.

    Reading stops after ``max_bytes + 1`` bytes, so a huge object costs no more than the limit
    (the size then reported is ``max_bytes + 1``, and the hash is of that prefix). A
    ``version_id`` names the version to read (a version never changes); else with ``etag`` the
    object must still be the one HEAD saw, or ObjectChanged. None when it is gone.
    """
    answer = _get(s3, _read_kwargs(bucket, key, etag, version_id), key)
    if answer is None:
        return None
    body = answer["Body"]
    digest = hashlib.sha256()
    head = b""
    size = 0
    try:
        while size <= max_bytes:
            chunk = body.read(min(chunk_size, max_bytes + 1 - size))
            if not chunk:
                break
            if len(head) < keep:
                head += chunk[: keep - len(head)]
            digest.update(chunk)
            size += len(chunk)
    finally:
        body.close()
    return ObjectContent(
        head=head,
        size=size,
        sha256=digest.hexdigest(),
        length=int(answer.get("ContentLength", size)),
        version_id=answer.get("VersionId") or None,
    )


def read_range(
    s3: Any,
    *,
    bucket: str,
    key: str,
    offset: int,
    length: int,
    etag: str | None = None,
    version_id: str | None = None,
) -> bytes | None:
    """``length`` bytes of an object (or of one version) from ``offset``: fewer at its end,
    None when it is gone. ``etag`` and ``version_id`` as for :func:`read_object`."""
    if length <= 0:
        return b""
    kwargs = _read_kwargs(bucket, key, etag, version_id)
    kwargs["Range"] = f"bytes={offset}-{offset + length - 1}"
    try:
        answer = _get(s3, kwargs, key)
    except ClientError as exc:
        if _error_code(exc) == "InvalidRange" or _http_status(exc) == 416:
            return b""
        raise
    if answer is None:
        return None
    body = answer["Body"]
    try:
        data: bytes = body.read(length)
    finally:
        body.close()
    return data


def delete_object(s3: Any, *, bucket: str, key: str, version_id: str | None = None) -> None:
    """Delete one version of an object for good (``null`` included), or without ``version_id``
    the object of a bucket that never had versioning; deleting one that is not there is not
    an error."""
    kwargs: dict[str, Any] = {"Bucket": bucket, "Key": key}
    if version_id:
        kwargs["VersionId"] = version_id
    try:
        s3.delete_object(**kwargs)
    except ClientError as exc:
        if not _is_missing(exc):
            raise


def delete_all_versions(s3: Any, *, bucket: str, prefix: str) -> int:
    """Delete for good every version and delete marker under ``prefix``; how many there were.

    A versioned bucket keeps what a plain DELETE removes as a noncurrent version, which a
    presigned GET naming it would still serve.
    """
    if not prefix:
        raise ValueError("refusing to delete every version of a whole bucket")
    found: list[dict[str, str]] = []
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=prefix):
        for entry in [*page.get("Versions", []), *page.get("DeleteMarkers", [])]:
            found.append({"Key": entry["Key"], "VersionId": entry.get("VersionId") or "null"})
    for start in range(0, len(found), 1000):
        answer = s3.delete_objects(
            Bucket=bucket, Delete={"Objects": found[start : start + 1000], "Quiet": True}
        )
        errors = [e for e in answer.get("Errors", []) if e.get("Code") not in {"NoSuchKey", "NoSuchVersion"}]
        if errors:
            raise RuntimeError(f"{len(errors)} versions under {prefix} could not be deleted: {errors[0]}")
    return len(found)


# --- the image table ---------------------------------------------------------------------

PENDING = "pending"
READY = "ready"
REJECTED = "rejected"
READY_INDEX = "ReadyByDate"
SHA256_INDEX = "ReadyBySha256"
"""A sparse index of ready images by their SHA-256 (attribute ``readySha256``, set only while
ready), so that an upload of bytes already in the gallery is found by a Query, not a Scan."""


@dataclass(frozen=True)
class ImageRecord:
    """One item of the image table (docs/internals.md, "Data model")."""

    image_id: str
    file_name: str
    s3_key: str
    file_type: str
    file_size: int
    status: str
    created_at: str
    sha256: str | None = None
    uploaded_at: str | None = None
    purge_at: int | None = None
    reason: str | None = None
    width: int | None = None
    height: int | None = None
    version_id: str | None = None
    tags: Mapping[str, str] | None = None
    tags_version: int | None = None
    """How many times the tags were changed (``tagsVersion``): the condition of the next change."""
    thumbnail_key: str | None = None
    thumbnail_version: str | None = None
    thumbnail_error: str | None = None
    thumbnail_width: int | None = None
    thumbnail_height: int | None = None

    def to_item(self) -> dict[str, dict[str, str]]:
        item = {
            "imageId": {"S": self.image_id},
            "fileName": {"S": self.file_name},
            "s3Key": {"S": self.s3_key},
            "fileType": {"S": self.file_type},
            "fileSize": {"N": str(self.file_size)},
            "status": {"S": self.status},
            "createdAt": {"S": self.created_at},
        }
        optional = {
            "sha256": self.sha256,
            "uploadedAt": self.uploaded_at,
            "reason": self.reason,
            "versionId": self.version_id,
        }
        for name, value in optional.items():
            if value is not None:
                item[name] = {"S": value}
        if self.uploaded_at is not None and self.status == READY:
            item["galleryPk"] = {"S": rules.GALLERY_PARTITION}
            if self.sha256 is not None:
                item["readySha256"] = {"S": self.sha256}
        numbers = {
            "purgeAt": self.purge_at,
            "width": self.width,
            "height": self.height,
            "thumbnailWidth": self.thumbnail_width,
            "thumbnailHeight": self.thumbnail_height,
        }
        for name, number in numbers.items():
            if number is not None:
                item[name] = {"N": str(number)}
        item.update(tag_attributes(self.tags, self.tags_version))
        thumbnail = {
            "thumbnailKey": self.thumbnail_key,
            "thumbnailVersion": self.thumbnail_version,
            "thumbnailError": self.thumbnail_error,
        }
        item.update({name: {"S": value} for name, value in thumbnail.items() if value is not None})
        return item

    @classmethod
    def from_item(cls, item: Mapping[str, Mapping[str, str]]) -> ImageRecord:
        def text(name: str) -> str | None:
            value = item.get(name)
            return None if value is None else value.get("S")

        def number(name: str) -> int | None:
            value = item.get(name)
            return None if value is None or "N" not in value else int(value["N"])

        return cls(
            image_id=text("imageId") or "",
            file_name=text("fileName") or "",
            s3_key=text("s3Key") or "",
            file_type=text("fileType") or "",
            file_size=number("fileSize") or 0,
            status=text("status") or "",
            created_at=text("createdAt") or "",
            sha256=text("sha256"),
            uploaded_at=text("uploadedAt"),
            purge_at=number("purgeAt"),
            reason=text("reason"),
            width=number("width"),
            height=number("height"),
            version_id=text("versionId"),
            tags=tags_of(item),
            tags_version=number("tagsVersion"),
            thumbnail_key=text("thumbnailKey"),
            thumbnail_version=text("thumbnailVersion"),
            thumbnail_error=text("thumbnailError"),
            thumbnail_width=number("thumbnailWidth"),
            thumbnail_height=number("thumbnailHeight"),
        )


def _still_ready_with_tags_of(record: ImageRecord) -> tuple[str, dict[str, Any]]:
    """A condition (and its values) that holds while the record is ready and its tags are
    those of ``record`` (``tagsVersion`` counts the changes). Names: ``#status``,
    ``#tagsVersion``."""
    values: dict[str, Any] = {":ready": {"S": READY}}
    if record.tags_version is None:
        return "#status = :ready AND attribute_not_exists(#tagsVersion)", values
    values[":seen"] = {"N": str(record.tags_version)}
    return "#status = :ready AND #tagsVersion = :seen", values


def tag_attributes(tags: Mapping[str, str] | None, version: int | None) -> dict[str, Any]:
    """The attributes that hold an image's tags: ``tags`` (a map; absent when there are none)
    and ``tagsVersion``."""
    item: dict[str, Any] = {}
    if tags:
        item["tags"] = {"M": {key: {"S": value} for key, value in tags.items()}}
    if version is not None:
        item["tagsVersion"] = {"N": str(version)}
    return item


def tags_of(item: Mapping[str, Any]) -> dict[str, str] | None:
    value = item.get("tags")
    if not isinstance(value, Mapping) or not isinstance(value.get("M"), Mapping):
        return None
    return {str(k): str(v.get("S", "")) for k, v in value["M"].items() if isinstance(v, Mapping)} or None


BATCH_WRITE_SIZE = 25
"""DynamoDB's limit of items per BatchWriteItem."""
BATCH_GET_SIZE = 100
"""DynamoDB's limit of keys per BatchGetItem."""
READ_BUDGET = 2000
"""The most index entries one listing request reads (DynamoDB Query Limit counts entries read,
before its FilterExpression): a filter that matches little never makes a request read the
whole gallery; the answer's cursor goes on from where it stopped."""
FILTERED_READ_FACTOR = 4
"""A filtered listing's first Query reads this many pages' worth of index entries."""
COUNT_BUDGET = 1000
"""The most index entries read to say how many images remain after a page."""

BATCH_ATTEMPTS = 6
BATCH_BACKOFF_SECONDS = 0.05


@dataclass(frozen=True)
class Transition:
    """Whether a conditional change of a record was made; when not, the record as it is now
    (None: there is none), read by the failed write itself, at no extra cost."""

    done: bool
    current: ImageRecord | None = None

    def __bool__(self) -> bool:
        return self.done


class Busy(Exception):
    """DynamoDB left part of a batch unprocessed after every retry (throttled): try again later."""


def _conditional_failed(exc: ClientError) -> bool:
    return _error_code(exc) == "ConditionalCheckFailedException"


class ImageStore:
    """The image table, through a low-level DynamoDB client."""

    def __init__(
        self, dynamodb: Any, table_name: str, *, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        self._db = dynamodb
        self._table = table_name
        self._sleep = sleep

    def create_pending(self, record: ImageRecord) -> None:
        """Store a new pending record; its id must not exist yet."""
        if record.status != PENDING or record.purge_at is None:
            raise ValueError("a new record is pending and has a purgeAt time")
        self._db.put_item(
            TableName=self._table,
            Item=record.to_item(),
            ConditionExpression="attribute_not_exists(imageId)",
        )

    def create_pending_many(self, records: Sequence[ImageRecord]) -> None:
        """Store new pending records, 25 to a BatchWriteItem, retrying what DynamoDB left
        unprocessed (a bounded number of times, then Busy).

        BatchWriteItem takes no condition; the ids are fresh random UUIDs.
        """
        for record in records:
            if record.status != PENDING or record.purge_at is None:
                raise ValueError("a new record is pending and has a purgeAt time")
        for start in range(0, len(records), BATCH_WRITE_SIZE):
            requests = [
                {"PutRequest": {"Item": r.to_item()}} for r in records[start : start + BATCH_WRITE_SIZE]
            ]
            pending: dict[str, Any] = {self._table: requests}
            for attempt in range(BATCH_ATTEMPTS):
                if attempt:
                    self._sleep(BATCH_BACKOFF_SECONDS * 2 ** (attempt - 1))
                pending = self._db.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}
                if not pending:
                    break
            else:
                raise Busy(f"{len(pending.get(self._table, []))} records were left unwritten")

    def get(self, image_id: str) -> ImageRecord | None:
        answer = self._db.get_item(
            TableName=self._table, Key={"imageId": {"S": image_id}}, ConsistentRead=True
        )
        item = answer.get("Item")
        return None if item is None else ImageRecord.from_item(item)

    def get_many(self, image_ids: Sequence[str]) -> dict[str, ImageRecord]:
        """The records of up to 100 distinct ids (absent ones are left out), by BatchGetItem
        with strongly consistent reads, retrying what DynamoDB left unprocessed (bounded)."""
        found: dict[str, ImageRecord] = {}
        for start in range(0, len(image_ids), BATCH_GET_SIZE):
            keys = [{"imageId": {"S": image_id}} for image_id in image_ids[start : start + BATCH_GET_SIZE]]
            pending: dict[str, Any] = {self._table: {"Keys": keys, "ConsistentRead": True}}
            for attempt in range(BATCH_ATTEMPTS):
                if attempt:
                    self._sleep(BATCH_BACKOFF_SECONDS * 2 ** (attempt - 1))
                answer = self._db.batch_get_item(RequestItems=pending)
                for item in answer.get("Responses", {}).get(self._table, []):
                    record = ImageRecord.from_item(item)
                    found[record.image_id] = record
                pending = answer.get("UnprocessedKeys") or {}
                if not pending:
                    break
            else:
                raise Busy(f"{len(pending[self._table]['Keys'])} records were left unread")
        return found

    def mark_ready(self, ready: ImageRecord) -> Transition:
        """The pending record becomes ``ready``: listed, with what the check found, pinned to
        the object version that was checked. Not done when the record is no longer pending
        (or is gone): then the record as it is now.

        The whole item is written (PutItem) rather than updated: the record was just read, a
        pending record is changed by nothing else (tags change only on ready ones, and any
        other change moves it out of pending, which the condition sees), and a PutItem costs
        a fraction of an UpdateItem where expressions are interpreted (the local stack)."""
        if ready.status != READY or ready.uploaded_at is None:
            raise ValueError("a ready record has its upload time")
        return self._put_if(ready, "#status = :pending", {"#status": "status"}, {":pending": {"S": PENDING}})

    def _put_if(
        self, record: ImageRecord, condition: str, names: Mapping[str, str], values: Mapping[str, Any]
    ) -> Transition:
        """One conditional PutItem of the whole record; when its condition fails, the record
        as it is (ALL_OLD)."""
        return self._write_if(
            self._db.put_item,
            Item=record.to_item(),
            ConditionExpression=condition,
            ExpressionAttributeNames=dict(names),
            ExpressionAttributeValues=dict(values),
        )

    def _write_if(self, write: Callable[..., Any], **request: Any) -> Transition:
        """One conditional write to the table; when its condition fails, the record as it is
        (ALL_OLD), None when there is none."""
        try:
            write(TableName=self._table, ReturnValuesOnConditionCheckFailure="ALL_OLD", **request)
        except ClientError as exc:
            if _conditional_failed(exc):
                item = exc.response.get("Item")
                return Transition(False, ImageRecord.from_item(item) if item else None)
            raise
        return Transition(True)

    def mark_rejected(
        self,
        image_id: str,
        *,
        reason: str,
        purge_at: int,
        expected_status: str = PENDING,
    ) -> Transition:
        """A record in ``expected_status`` becomes rejected (never listed, purged by TTL later).

        Not done when the record is not in ``expected_status`` (or is gone).
        """
        return self._transition(
            image_id,
            expected=expected_status,
            assign={"status": {"S": REJECTED}, "reason": {"S": reason}, "purgeAt": {"N": str(purge_at)}},
            remove=("galleryPk", "uploadedAt", "readySha256"),
        )

    def _transition(
        self,
        image_id: str,
        *,
        expected: str,
        assign: Mapping[str, Mapping[str, str]],
        remove: Sequence[str],
    ) -> Transition:
        """Set ``assign`` and remove ``remove`` on the record if its status is ``expected``;
        else the record as it is (or None). Placeholders are ``#``/``:`` + the name."""
        update = "SET " + ", ".join(f"#{name} = :{name}" for name in assign)
        if remove:
            update += " REMOVE " + ", ".join(f"#{name}" for name in remove)
        names = {f"#{name}": name for name in [*assign, *remove, "status"]}
        values = {f":{name}": dict(value) for name, value in assign.items()}
        values[":expected"] = {"S": expected}
        return self._update_if(image_id, update, "#status = :expected", names, values)

    def _update_if(
        self,
        image_id: str,
        update: str,
        condition: str,
        names: Mapping[str, str],
        values: Mapping[str, Any],
    ) -> Transition:
        """One conditional UpdateItem; when its condition fails, the record as it is (ALL_OLD)."""
        return self._write_if(
            self._db.update_item,
            Key={"imageId": {"S": image_id}},
            UpdateExpression=update,
            ConditionExpression=condition,
            ExpressionAttributeNames=dict(names),
            ExpressionAttributeValues=dict(values),
        )

    def replace_tags(self, record: ImageRecord, tags: Mapping[str, str]) -> Transition:
        """Give a ready record these tags, if nobody changed its tags since ``record`` was read
        (``tagsVersion``) and it is still ready; else the record as it is now."""
        version = record.tags_version or 0
        assign: dict[str, Any] = {"tagsVersion": {"N": str(version + 1)}}
        if tags:
            assign["tags"] = tag_attributes(tags, None)["tags"]
        update = "SET " + ", ".join(f"#{name} = :{name}" for name in assign)
        if not tags:
            update += " REMOVE #tags"
        condition, values = _still_ready_with_tags_of(record)
        values.update({f":{name}": value for name, value in assign.items()})
        names = {"#status": "status", "#tags": "tags", "#tagsVersion": "tagsVersion"}
        return self._update_if(record.image_id, update, condition, names, values)

    def record_thumbnail(
        self, record: ImageRecord, *, key: str, version_id: str | None, width: int, height: int
    ) -> bool:
        """Record the thumbnail of a ready image read as ``record``. False when the image is
        gone or no longer ready.

        The whole record is written (a PutItem, a fraction of an UpdateItem's cost on the
        local stack), on the condition that nothing changed it since it was read: it is still
        ready, still without a thumbnail, and its tags are unchanged (``tagsVersion``; tags
        and the thumbnail are all that changes on a ready record). When something did, the
        thumbnail is recorded with an UpdateItem instead (``set_thumbnail``)."""
        made = replace(
            record,
            thumbnail_key=key,
            thumbnail_version=version_id,
            thumbnail_width=width,
            thumbnail_height=height,
            thumbnail_error=None,
        )
        condition, values = _still_ready_with_tags_of(record)
        condition += " AND attribute_not_exists(#thumbnailKey)"
        names = {"#status": "status", "#tagsVersion": "tagsVersion", "#thumbnailKey": "thumbnailKey"}
        if self._put_if(made, condition, names, values):
            return True
        return self.set_thumbnail(record.image_id, key=key, version_id=version_id, width=width, height=height)

    def set_thumbnail(
        self,
        image_id: str,
        *,
        key: str | None = None,
        version_id: str | None = None,
        width: int | None = None,
        height: int | None = None,
        error: str | None = None,
    ) -> bool:
        """Record a ready image's thumbnail (its key, version and size), or why it could not be
        made (``error``). False when the record is gone or no longer ready."""
        assign: dict[str, Any] = {}
        if key is not None:
            assign = {"thumbnailKey": {"S": key}, "thumbnailWidth": {"N": str(width or 0)}}
            assign["thumbnailHeight"] = {"N": str(height or 0)}
            if version_id:
                assign["thumbnailVersion"] = {"S": version_id}
        else:
            assign = {"thumbnailError": {"S": (error or "unknown")[:500]}}
        update = "SET " + ", ".join(f"#{name} = :{name}" for name in assign)
        if key is not None:
            update += " REMOVE #thumbnailError"
        names = {f"#{name}": name for name in [*assign, "status"]}
        if key is not None:
            names["#thumbnailError"] = "thumbnailError"
        values = {f":{name}": value for name, value in assign.items()}
        values[":ready"] = {"S": READY}
        return bool(self._update_if(image_id, update, "#status = :ready", names, values))

    def delete(self, image_id: str) -> ImageRecord | None:
        """Delete a record and return it, or None when there was none."""
        try:
            answer = self._db.delete_item(
                TableName=self._table,
                Key={"imageId": {"S": image_id}},
                ConditionExpression="attribute_exists(imageId)",
                ReturnValues="ALL_OLD",
            )
        except ClientError as exc:
            if _conditional_failed(exc):
                return None
            raise
        return ImageRecord.from_item(answer.get("Attributes", {}))

    def find_ready(self, sha256: str) -> ImageRecord | None:
        """A ready image with these bytes (by SHA-256, hex), or None: one Query on the sparse
        ReadyBySha256 index. An index is eventually consistent: an image made ready a moment
        ago may not be found yet."""
        answer = self._db.query(
            TableName=self._table,
            IndexName=SHA256_INDEX,
            KeyConditionExpression="#sha = :sha",
            ExpressionAttributeNames={"#sha": "readySha256"},
            ExpressionAttributeValues={":sha": {"S": sha256}},
            Limit=1,
        )
        records = [ImageRecord.from_item(item) for item in answer.get("Items", [])]
        # Only ready records carry the key; a stale index entry never answers for a rejected one.
        return next((r for r in records if r.status == READY), None)

    def list_ready(
        self,
        *,
        limit: int,
        start_key: Mapping[str, str] | None = None,
        where: rules.ListFilter = rules.ListFilter(),
        oldest_first: bool = False,
        budget: int | None = None,
    ) -> tuple[list[ImageRecord], dict[str, str] | None]:
        """One page of ready records that pass ``where``, newest (or oldest) first, and the key
        to continue after (None at the end of the index).

        Dates and order are the index's sort key; the other filters are a FilterExpression
        (which DynamoDB applies after reading) and an exact check here. At most ``budget``
        index entries are read (READ_BUDGET by default): a filter that few images pass gives
        a short page, even an empty one, with the key to go on from. One record more than
        ``limit`` is asked for, so that the last page says it is the last. Keys are plain
        strings (:func:`rules.encode_cursor` form).
        """
        budget = READ_BUDGET if budget is None else budget
        query = _ListQuery(where, oldest_first)
        records: list[ImageRecord] = []
        key = dict(start_key) if start_key is not None else None
        read = 0
        # Every entry passes a key condition: read one more than the page. A filter drops some:
        # read a few pages' worth, then twice as much each time (fewer round trips), within budget.
        chunk = (limit + 1) * (FILTERED_READ_FACTOR if query.conditions else 1)
        while read < budget:
            answer = self._db.query(
                **query.kwargs(self._table), Limit=min(chunk, budget - read), **_start(key)
            )
            read += _entries_read(answer)
            for item in answer.get("Items", []):
                record = ImageRecord.from_item(item)
                if not query.accepts(record):
                    continue
                if len(records) == limit:  # one more than asked for: there is a next page
                    return records, _key_of(records[-1])
                records.append(record)
            evaluated = answer.get("LastEvaluatedKey")
            if not evaluated:
                return records, None
            key = _plain_key(evaluated)
            chunk = max(chunk * 2, limit + 1 - len(records))
        return records, key

    def count_ready(
        self,
        *,
        start_key: Mapping[str, str],
        where: rules.ListFilter = rules.ListFilter(),
        oldest_first: bool = False,
        budget: int | None = None,
    ) -> tuple[int, bool]:
        """How many ready records that pass ``where`` come after ``start_key``, reading at
        most ``budget`` index entries (COUNT_BUDGET by default): (count, True) when that
        reached the end of the index, else (count so far, False), a lower bound.

        A bounded look-ahead rather than a counter kept up to date: it costs the same
        whatever the size of the gallery (at most ``budget`` entries read, nothing written),
        adds no state that a failed write could leave wrong, and counts what a filter keeps,
        which no counter could. Past ``budget`` it says "more than".
        """
        budget = COUNT_BUDGET if budget is None else budget
        query = _ListQuery(where, oldest_first)
        count = read = 0
        key: dict[str, str] | None = dict(start_key)
        while read < budget:
            answer = self._db.query(
                **query.kwargs(self._table, count_only=True), Limit=budget - read, **_start(key)
            )
            read += _entries_read(answer)
            if "Items" in answer:  # the exact check needs attributes
                count += sum(1 for item in answer["Items"] if query.accepts(ImageRecord.from_item(item)))
            else:
                count += int(answer.get("Count", 0))
            evaluated = answer.get("LastEvaluatedKey")
            if not evaluated:
                return count, True
            key = _plain_key(evaluated)
        return count, False


# What a listing needs of a record; the rest (status, createdAt, the index keys) stays in the
# table. Projecting less makes each answer smaller to read and decode.
LISTED_ATTRIBUTES = (
    "imageId",
    "fileName",
    "s3Key",
    "fileType",
    "fileSize",
    "sha256",
    "uploadedAt",
    "width",
    "height",
    "versionId",
    "tags",
    "thumbnailKey",
    "thumbnailVersion",
)


class _ListQuery:
    """The Query of ReadyByDate for a ListFilter: the key condition (dates, order), the
    FilterExpression (name, type) and the exact check of what that expression approximates.

    Each filter adds its clause here: a condition on the record's attributes with its values,
    the attributes its exact check reads, and that check in ``accepts``."""

    def __init__(self, where: rules.ListFilter, oldest_first: bool) -> None:
        self.where = where
        self.oldest_first = oldest_first
        self._names: dict[str, str] = {}  # attribute -> placeholder
        self.values: dict[str, dict[str, str]] = {":ready": {"S": rules.GALLERY_PARTITION}}
        self.key_condition = f"{self.name('galleryPk')} = :ready" + self._dates()
        self.conditions: list[str] = []
        self.checked: set[str] = set()  # attributes that ``accepts`` reads
        if where.name is not None:
            self._name_clause(where.name)
        if where.types:
            self._type_clause(where.types)
        if where.tags:
            self._tag_clause(where.tags)

    def name(self, attribute: str) -> str:
        """The placeholder of an attribute (every name is one: some are reserved words)."""
        return self._names.setdefault(attribute, f"#a{len(self._names)}")

    def value(self, value: str) -> str:
        placeholder = f":v{len(self.values)}"
        self.values[placeholder] = {"S": value}
        return placeholder

    def _dates(self) -> str:
        since, until = self.where.since, self.where.until
        if since is None and until is None:
            return ""
        at = self.name("uploadedAt")
        if since is not None and until is not None:
            return f" AND {at} BETWEEN {self.value(since)} AND {self.value(rules.before(until))}"
        if since is not None:
            return f" AND {at} >= {self.value(since)}"
        return f" AND {at} <= {self.value(rules.before(str(until)))}"

    def _name_clause(self, pattern: str) -> None:
        self.checked.add("fileName")
        name = self.name("fileName")
        if not any(ch in pattern for ch in "*?["):
            self.conditions.append(f"{name} = {self.value(pattern)}")
            return
        prefix, runs = rules.glob_literals(pattern)
        if prefix:
            self.conditions.append(f"begins_with({name}, {self.value(prefix)})")
        for run in runs[:MAX_NAME_RUNS]:
            self.conditions.append(f"contains({name}, {self.value(run)})")

    def _type_clause(self, types: Sequence[str]) -> None:
        self.checked.add("fileType")
        listed = ", ".join(self.value(t) for t in types)
        self.conditions.append(f"{self.name('fileType')} IN ({listed})")

    def _tag_clause(self, tags: Sequence[tuple[str, str | None]]) -> None:
        """Each tag, a condition on one key of the ``tags`` map (a key is a path element,
        with its own placeholder: it may be a reserved word)."""
        self.checked.add("tags")
        for key, value in tags:
            path = f"{self.name('tags')}.{self.name(key)}"
            self.conditions.append(
                f"attribute_exists({path})" if value is None else f"{path} = {self.value(value)}"
            )

    def accepts(self, record: ImageRecord) -> bool:
        """The exact check (a glob's FilterExpression only narrows it down)."""
        where = self.where
        if where.name is not None and not fnmatch.fnmatchcase(record.file_name, where.name):
            return False
        if where.tags and not _has_tags(record.tags or {}, where.tags):
            return False
        return not where.types or record.file_type in where.types

    def kwargs(self, table: str, *, count_only: bool = False) -> dict[str, Any]:
        """The Query's parameters; ``count_only``: only what counting needs (Select COUNT
        when nothing is checked here)."""
        kwargs: dict[str, Any] = {
            "TableName": table,
            "IndexName": READY_INDEX,
            "KeyConditionExpression": self.key_condition,
            "ScanIndexForward": self.oldest_first,
        }
        if self.conditions:
            kwargs["FilterExpression"] = " AND ".join(self.conditions)
        names = dict(self._names)
        if count_only and not self.checked:
            kwargs["Select"] = "COUNT"
        else:
            wanted = sorted(self.checked | {"imageId"}) if count_only else LISTED_ATTRIBUTES
            for attribute in wanted:
                names.setdefault(attribute, f"#a{len(names)}")
            kwargs["ProjectionExpression"] = ", ".join(names[a] for a in wanted)
        kwargs["ExpressionAttributeNames"] = {placeholder: a for a, placeholder in names.items()}
        kwargs["ExpressionAttributeValues"] = self.values
        return kwargs


def _has_tags(tags: Mapping[str, str], wanted: Sequence[tuple[str, str | None]]) -> bool:
    return all(key in tags and (value is None or tags[key] == value) for key, value in wanted)


MAX_NAME_RUNS = 8
"""The most literal parts of a name glob turned into ``contains`` conditions (the exact check
does the rest)."""


def _entries_read(answer: Mapping[str, Any]) -> int:
    """Index entries a Query read (ScannedCount); at least one, so that a loop always ends."""
    return max(int(answer.get("ScannedCount", 0)), len(answer.get("Items", [])), 1)


def _start(key: Mapping[str, str] | None) -> dict[str, Any]:
    if key is None:
        return {}
    return {"ExclusiveStartKey": {name: {"S": value} for name, value in key.items()}}


def _plain_key(evaluated: Mapping[str, Mapping[str, str]]) -> dict[str, str]:
    return {name: value["S"] for name, value in evaluated.items()}


def _key_of(record: ImageRecord) -> dict[str, str]:
    return {
        "galleryPk": rules.GALLERY_PARTITION,
        "imageId": record.image_id,
        "uploadedAt": record.uploaded_at or "",
    }
