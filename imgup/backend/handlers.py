"""The Lambda entry points (docs/internals.md): ``upload``, ``images``, ``complete``, ``delete``.

Each is ``handler(event, context, environ=None)``: Lambda calls it with two arguments and the
settings come from ``os.environ``; the local stack passes the function's environment. Events
are API Gateway Lambda-proxy (REST) requests; ``complete`` also takes S3 ObjectCreated events.

Every HTTP answer is JSON with CORS headers. Refusals are ``{"error": "<for a person>"}`` with
a 4xx status; anything unexpected is a 500 that says only ``Internal server error`` and the
request id, while the details go to the log. The log gets one JSON line per request with the
request id and validated fields, never the event, its headers or the API key.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
import logging
import math
import os
import re
import time
import traceback
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import unquote_plus

from . import completion, rules, sharing, storage, thumbnails
from .settings import ConfigError, Settings, clients, share_secret
from .storage import ImageRecord, ImageStore

__all__ = ["MAX_BODY_BYTES", "complete", "delete", "images", "upload"]

logger = logging.getLogger(__name__.rpartition(".")[0] or __name__)
logger.setLevel(logging.INFO)

MAX_BODY_BYTES = 16 * 1024
"""The largest request body read; an upload request is a few hundred bytes."""

MAX_BATCH_BODY_BYTES = 256 * 1024
"""The largest ``POST /uploads`` body: 100 entries with the longest names, escaped, fit."""

BATCH_WORKERS = 8
"""Completions that ``POST /uploads/complete`` runs at once (each waits on S3 and DynamoDB),
and lookups of duplicates that ``POST /uploads`` runs at once."""

SHARE_REDIRECT_SECONDS = 300
"""The longest life of the presigned GET that a share link redirects to (never longer than the
link has left): the browser follows it at once, and a fresh one is made on every visit."""

UPLOAD_MESSAGE = "Upload URL generated successfully"
DUPLICATE_MESSAGE = "The image is already in the gallery; nothing to upload"
INTERNAL_ERROR = "Internal server error"

_REQUEST_ID_RE = re.compile(r"[A-Za-z0-9-]{1,64}")


def _now() -> datetime:
    return datetime.now(timezone.utc)


clock: Callable[[], datetime] = _now
"""The handlers' clock; tests replace it to control ``uploadedAt``."""


class HttpError(Exception):
    """A refusal to answer with ``status`` and ``{"error": message, **extra}``."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        extra: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.extra = dict(extra or {})
        self.headers = dict(headers or {})


# --- answers -----------------------------------------------------------------------------


_ALLOWED_HEADERS = "Content-Type,X-Api-Key,X-Amz-Date,Authorization,X-Amz-Security-Token"


def _headers(origin: str) -> dict[str, str]:
    headers = {
        "Content-Type": "application/json",
        "Access-Control-Allow-Origin": origin,
        "Access-Control-Allow-Headers": _ALLOWED_HEADERS,
        "Access-Control-Allow-Methods": "GET,POST,DELETE,OPTIONS",
        "Cache-Control": "no-store",
        "X-Content-Type-Options": "nosniff",
    }
    if origin != "*":
        headers["Vary"] = "Origin"
    return headers


def _answer(status: int, body: Mapping[str, Any] | None, origin: str, request_id: str) -> dict[str, Any]:
    headers = _headers(origin)
    headers["X-Request-Id"] = request_id
    return {
        "statusCode": status,
        "headers": headers,
        "body": "" if body is None else json.dumps(body, separators=(",", ":")),
    }


def _log(level: int, fields: Mapping[str, Any]) -> None:
    logger.log(
        level,
        json.dumps({k: v for k, v in fields.items() if v is not None}, default=str),
    )


# --- the request -------------------------------------------------------------------------


def _request_id(event: Any, context: Any) -> str:
    candidates = []
    if isinstance(event, dict) and isinstance(event.get("requestContext"), dict):
        candidates.append(event["requestContext"].get("requestId"))
    candidates.append(getattr(context, "aws_request_id", None))
    for candidate in candidates:
        if isinstance(candidate, str) and _REQUEST_ID_RE.fullmatch(candidate):
            return candidate
    return str(uuid.uuid4())


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _raw_body(event: Mapping[str, Any], limit: int = MAX_BODY_BYTES) -> bytes | None:
    """The request body as bytes, refused when over ``limit`` bytes or not decodable."""
    body = event.get("body")
    if body is None or body == "":
        return None
    if not isinstance(body, str):
        raise HttpError(400, "Request body must be a JSON object")
    too_large = HttpError(413, f"Request body is too large (limit {rules.format_size(limit)})")
    if event.get("isBase64Encoded"):
        if len(body) > (limit * 4) // 3 + 4:
            raise too_large
        try:
            raw = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            raise HttpError(400, "Request body is not valid base64") from None
    else:
        if len(body) > limit:
            raise too_large
        try:
            raw = body.encode("utf-8")
        except UnicodeEncodeError:
            raise HttpError(400, "Request body must be UTF-8 JSON") from None
    if len(raw) > limit:
        raise too_large
    return raw


def _json_object(raw: bytes | None) -> dict[str, Any]:
    if raw is None:
        raise HttpError(400, "Request body must be a JSON object")
    try:
        value = json.loads(raw.decode("utf-8"), parse_constant=_refuse_constant)
    except UnicodeDecodeError:
        raise HttpError(400, "Request body must be UTF-8 JSON") from None
    except (ValueError, RecursionError):
        raise HttpError(400, "Request body is not valid JSON") from None
    if not isinstance(value, dict):
        raise HttpError(400, "Request body must be a JSON object")
    return value


def _query(event: Mapping[str, Any]) -> Mapping[str, Any]:
    params = event.get("queryStringParameters")
    if params is None:
        return {}
    if not isinstance(params, dict):
        raise HttpError(400, "Malformed query string")
    return params


def _image_id(params: Mapping[str, str]) -> str:
    image_id = params.get("imageId")
    if not rules.is_image_id(image_id):
        raise HttpError(400, "Invalid image id: expected the imageId of an upload")
    return str(image_id)


# --- routing -----------------------------------------------------------------------------


@dataclass
class Request:
    """What a route gets: the settings, clients, parsed parameters and the log fields to fill."""

    settings: Settings
    s3: Any
    store: ImageStore
    event: Mapping[str, Any]
    params: dict[str, str]
    request_id: str
    log: dict[str, Any]
    credentials: Any = None
    _signer: storage.Presigner | None = None

    @property
    def signer(self) -> storage.Presigner:
        """The request's presigner for the image bucket, made on first use."""
        if self._signer is None:
            self._signer = storage.Presigner(self.s3, self.credentials, self.settings.bucket_name)
        return self._signer

    def file_url(self, record: ImageRecord, expires_in: int | None = None) -> str:
        """A presigned GET of the image's verified version."""
        return self._download_url(record.s3_key, record.file_type, record.version_id, expires_in)

    def _download_url(
        self, key: str, content_type: str, version_id: str | None, expires_in: int | None = None
    ) -> str:
        """A presigned GET of one version of an object (the image, or its thumbnail)."""
        return self.signer.download_url(
            key,
            expires_in=expires_in or self.settings.download_url_expiry_seconds,
            content_type=content_type,
            version_id=version_id,
        )

    def image_json(self, record: ImageRecord) -> dict[str, Any]:
        """An image as the API shows it: the original fields, plus sha256, width and height
        (pixels) when known, its tags, and thumbnailUrl once its thumbnail is made."""
        image: dict[str, Any] = {
            "imageId": record.image_id,
            "fileName": record.file_name,
            "fileUrl": self.file_url(record),
            "fileType": record.file_type,
            "fileSize": record.file_size,
            "uploadedAt": record.uploaded_at,
            "objectKey": record.s3_key,
        }
        if record.sha256:
            image["sha256"] = record.sha256
        if record.width and record.height:
            image["width"] = record.width
            image["height"] = record.height
        image["tags"] = dict(record.tags or {})
        if record.thumbnail_key:
            image["thumbnailUrl"] = self._download_url(
                record.thumbnail_key, thumbnails.CONTENT_TYPE, record.thumbnail_version
            )
        return image


Route = Callable[[Request], tuple[Any, ...]]
"""A route answers (status, body) or (status, body, extra headers)."""


def _grant(req: Request, upload: rules.UploadRequest, now: datetime) -> tuple[ImageRecord, dict[str, Any]]:
    """A new pending record for a validated upload request, and the answer's fields for it:
    the presigned PUT and the headers to send with it, the file's URL, and the PUT's expiry."""
    settings = req.settings
    image_id = rules.new_image_id()
    record = ImageRecord(
        image_id=image_id,
        file_name=upload.file_name,
        s3_key=rules.object_key(image_id, upload.file_name),
        file_type=upload.file_type,
        file_size=upload.file_size,
        status=storage.PENDING,
        created_at=rules.format_timestamp(now),
        sha256=upload.sha256,
        purge_at=int(now.timestamp()) + settings.pending_ttl_seconds,
        tags=upload.tags,
    )
    upload_url, upload_headers = req.signer.upload(
        record.s3_key,
        content_type=upload.content_type,
        content_length=upload.file_size,
        sha256_hex=upload.sha256,
        expires_in=settings.url_expiry_seconds,
    )
    file_url = req.file_url(record)
    return record, {
        "imageId": image_id,
        "uploadUrl": upload_url,
        "uploadHeaders": upload_headers,
        "fileUrl": file_url,
        "expiresAt": rules.format_timestamp(now + timedelta(seconds=settings.url_expiry_seconds)),
        "expiresIn": settings.url_expiry_seconds,
    }


def _route_upload(req: Request) -> tuple[int, dict[str, Any]]:
    upload = rules.validate_upload_request(_json_object(_raw_body(req.event)), req.settings.max_upload_bytes)
    existing = _duplicates(req, [upload]).get(upload.sha256 or "")
    if existing is not None:
        req.log.update(imageId=existing.image_id, duplicate=True)
        return 200, {"message": DUPLICATE_MESSAGE, "duplicate": True, **req.image_json(existing)}
    record, granted = _grant(req, upload, clock())
    req.log.update(imageId=record.image_id, fileType=upload.file_type, fileSize=upload.file_size)
    req.store.create_pending(record)
    return 200, {"message": UPLOAD_MESSAGE, **granted}


def _duplicates(req: Request, uploads: list[rules.UploadRequest]) -> dict[str, ImageRecord]:
    """The ready images that already hold the bytes of these uploads, by SHA-256: one Query of
    the ReadyBySha256 index per distinct digest (several at once), for the uploads that
    declare a digest and do not allow duplicates. The original API sends no digest: no cost."""
    digests = sorted({u.sha256 for u in uploads if u.sha256 and not u.allow_duplicates})
    if len(digests) <= 1:
        found = [req.store.find_ready(digest) for digest in digests]
    else:
        with ThreadPoolExecutor(max_workers=min(BATCH_WORKERS, len(digests))) as pool:
            found = list(pool.map(req.store.find_ready, digests))
    return {digest: record for digest, record in zip(digests, found, strict=True) if record is not None}


def _route_uploads(req: Request) -> tuple[int, dict[str, Any]]:
    """Presign up to 100 files; a refused entry never fails the others, and a file whose bytes
    are in the gallery already is answered with that image."""
    files = rules.validate_batch(_json_object(_raw_body(req.event, MAX_BATCH_BODY_BYTES)), "files")
    now = clock()
    uploads: list[rules.UploadRequest | rules.ValidationError] = []
    for body in files:
        try:
            if not isinstance(body, dict):
                raise rules.ValidationError("Each entry of files must be a JSON object")
            uploads.append(rules.validate_upload_request(body, req.settings.max_upload_bytes))
        except rules.ValidationError as exc:
            uploads.append(exc)
    existing = _duplicates(req, [u for u in uploads if isinstance(u, rules.UploadRequest)])
    records: list[ImageRecord] = []
    entries: list[dict[str, Any]] = []
    for index, upload in enumerate(uploads):
        if isinstance(upload, rules.ValidationError):
            entries.append(_refusal_entry({"index": index}, upload))
        elif not upload.allow_duplicates and upload.sha256 in existing:
            entries.append({"index": index, "duplicate": True, **req.image_json(existing[upload.sha256])})
        else:
            record, granted = _grant(req, upload, now)
            records.append(record)
            entries.append({"index": index, **granted})
    req.log.update(
        count=len(entries), granted=len(records), duplicates=sum(1 for e in entries if "duplicate" in e)
    )
    try:
        req.store.create_pending_many(records)
    except storage.Busy:
        raise _busy() from None
    return 200, {"uploads": entries, "count": len(entries)}


def _refusal_entry(entry: dict[str, Any], exc: rules.ValidationError) -> dict[str, Any]:
    entry.update(error=exc.message, status=exc.status)
    if exc.field:
        entry["field"] = exc.field
    return entry


def _route_list(req: Request) -> tuple[int, dict[str, Any]]:
    """A page of the gallery, filtered and ordered as asked; with ``countRemaining``, how many
    images come after a full page (a bounded count: see ImageStore.count_ready)."""
    query = rules.parse_list_query(_list_params(req.event))
    where, oldest = query.filter, query.oldest_first
    records, next_key = req.store.list_ready(
        limit=query.limit, start_key=query.start_key, where=where, oldest_first=oldest
    )
    images = [req.image_json(record) for record in records]
    answer: dict[str, Any] = {
        "images": images,
        "count": len(images),
        "nextCursor": None if next_key is None else rules.encode_cursor(next_key),
        "order": "oldest" if oldest else "newest",
        "filter": where.to_json(),
    }
    # Counted after a full page only: a short one (a filter that kept few within the read
    # budget) is followed by another request anyway, which counts.
    if query.count_remaining and (next_key is None or len(records) == query.limit):
        remaining, exact = (0, True)
        if next_key is not None:
            remaining, exact = req.store.count_ready(start_key=next_key, where=where, oldest_first=oldest)
        answer.update(remaining=remaining, remainingExact=exact)
    req.log.update(count=len(images), filtered=not where.empty)
    return 200, answer


def _list_params(event: Mapping[str, Any]) -> dict[str, Any]:
    """The query parameters, with every ``tag`` when it is repeated (API Gateway keeps only
    the last in queryStringParameters)."""
    params = dict(_query(event))
    multi = event.get("multiValueQueryStringParameters")
    if isinstance(multi, dict) and isinstance(multi.get("tag"), list) and len(multi["tag"]) > 1:
        params["tag"] = multi["tag"]
    return params


def _route_get(req: Request) -> tuple[int, dict[str, Any]]:
    image_id = _image_id(req.params)
    req.log.update(imageId=image_id)
    record = req.store.get(image_id)
    if record is None or record.status != storage.READY:
        raise HttpError(404, "Image not found", extra={"imageId": image_id})
    return 200, req.image_json(record)


def _route_complete(req: Request) -> tuple[int, dict[str, Any]]:
    image_id = _image_id(req.params)
    req.log.update(imageId=image_id)
    _raw_body(req.event)  # no body is needed, but an oversized one is still refused
    record = req.store.get(image_id)
    if record is None:
        raise HttpError(404, "Image not found", extra={"imageId": image_id})
    outcome = _complete(req.settings, req.s3, req.store, record)
    req.log.update(outcome=outcome.kind, reason=outcome.record.reason)
    return _outcome_answer(req, outcome)


NOT_UPLOADED = "The file has not been uploaded yet: PUT it to uploadUrl, then complete again"


def _outcome_entry(req: Request, image_id: str, outcome: completion.Outcome | None) -> dict[str, Any]:
    """A completion's outcome as ``POST /uploads/complete`` gives it: the image with ``"status":
    "ready"``, or ``{imageId, error, status, reason?}`` where ``status`` is the HTTP status."""
    if outcome is None or outcome.kind == "gone":
        return {"imageId": image_id, "error": "Image not found", "status": 404}
    if outcome.kind == "ready":
        return {**req.image_json(outcome.record), "status": storage.READY}
    if outcome.kind == "not_arrived":
        return {"imageId": image_id, "error": NOT_UPLOADED, "status": 409}
    reason = outcome.record.reason
    return {
        "imageId": image_id,
        "error": f"Upload rejected. {reason}",
        "status": outcome.status,
        "reason": reason,
    }


def _outcome_answer(req: Request, outcome: completion.Outcome) -> tuple[int, dict[str, Any]]:
    """The same outcome as ``POST /images/{imageId}/complete`` answers it: a refusal's body
    says the record's status (``pending``, ``rejected``) rather than the HTTP status."""
    entry = _outcome_entry(req, outcome.record.image_id, outcome)
    if outcome.kind == "ready":
        return 200, entry
    status, message = entry.pop("status"), entry.pop("error")
    if outcome.kind != "gone":
        entry["status"] = outcome.record.status
    raise HttpError(status, message, extra=entry)


def _busy() -> HttpError:
    return HttpError(503, "The service is busy; try again", headers={"Retry-After": "1"})


def _route_complete_many(req: Request) -> tuple[int, dict[str, Any]]:
    """Complete up to 100 uploads: one BatchGetItem, then the same check as the single route
    for each (at no S3 cost for those already done), several at once."""
    image_ids = rules.validate_image_ids(_json_object(_raw_body(req.event)))
    try:
        records = req.store.get_many(image_ids)
    except storage.Busy:
        raise _busy() from None

    def finish(image_id: str) -> completion.Outcome | None:
        record = records.get(image_id)
        return None if record is None else _check(req.settings, req.s3, req.store, record, None)

    waiting = [i for i in image_ids if i in records and records[i].status == storage.PENDING]
    outcomes = {i: finish(i) for i in image_ids if i not in waiting}
    if waiting:
        with ThreadPoolExecutor(max_workers=min(BATCH_WORKERS, len(waiting))) as pool:
            outcomes.update(zip(waiting, pool.map(finish, waiting), strict=True))
    made = [i for i in image_ids if (o := outcomes[i]) is not None and o.made and o.kind == "ready"]
    thumbnails.request(req.settings, *made)  # one invocation for many
    images = [_outcome_entry(req, image_id, outcomes[image_id]) for image_id in image_ids]
    req.log.update(count=len(images), ready=sum(1 for i in images if i["status"] == storage.READY))
    return 200, {"images": images, "count": len(images)}


def _share_secret(settings: Settings) -> bytes:
    if settings.share_secret_id is None:
        raise ConfigError("SHARE_SECRET_ID is not set")
    return share_secret(settings.connection, settings.share_secret_id)


def _route_share(req: Request) -> tuple[int, dict[str, Any]]:
    """A link to a ready image that works for ``expiresIn`` seconds (up to 7 days): the path
    ``/share/<token>`` of this API, whose token is signed with the stack's share secret."""
    image_id = _image_id(req.params)
    req.log.update(imageId=image_id)
    raw = _raw_body(req.event)
    expires_in = rules.validate_expires_in(None if raw is None else _json_object(raw))
    record = req.store.get(image_id)
    if record is None or record.status != storage.READY:
        raise HttpError(404, "Image not found", extra={"imageId": image_id})
    expires = math.ceil(clock().timestamp()) + expires_in  # never less life than asked for
    token = sharing.make_token(_share_secret(req.settings), image_id, expires)
    req.log.update(expiresIn=expires_in)
    return 200, {
        "imageId": image_id,
        "sharePath": f"/share/{token}",
        "expiresAt": rules.format_timestamp(datetime.fromtimestamp(expires, timezone.utc)),
        "expiresIn": expires_in,
    }


def _route_open_share(req: Request) -> tuple[int, dict[str, Any], dict[str, str]]:
    """``GET /share/{token}``, opened by anyone with the link (no API key): a redirect to a
    fresh presigned GET of the image, living no longer than the link has left."""
    share = sharing.read_token(_share_secret(req.settings), req.params.get("token"))
    if share is None:
        raise HttpError(404, "This share link is not valid: check that it was copied whole")
    req.log.update(imageId=share.image_id)
    expires_at = rules.format_timestamp(datetime.fromtimestamp(share.expires, timezone.utc))
    left = share.expires - clock().timestamp()
    if left <= 0:
        raise HttpError(410, "This share link has expired", extra={"expiredAt": expires_at})
    record = req.store.get(share.image_id)
    if record is None or record.status != storage.READY:
        raise HttpError(410, "The shared image is no longer in the gallery")
    # S3 counts a URL's life in whole seconds: in its last second, a link gives one second.
    url = req.file_url(record, expires_in=max(1, min(int(left), SHARE_REDIRECT_SECONDS)))
    return 302, {"url": url, "expiresAt": expires_at}, {"Location": url, "Referrer-Policy": "no-referrer"}


def _route_delete(req: Request) -> tuple[int, dict[str, Any]]:
    image_id = _image_id(req.params)
    req.log.update(imageId=image_id)
    record = req.store.delete(image_id)
    if record is None:
        raise HttpError(404, "Image not found", extra={"imageId": image_id})
    # Every version: a fileUrl names one, and must stop working with the image.
    storage.delete_all_versions(req.s3, bucket=req.settings.bucket_name, prefix=f"images/{image_id}/")
    if record.thumbnail_key:
        storage.delete_all_versions(req.s3, bucket=req.settings.bucket_name, prefix=record.thumbnail_key)
    return 200, {"message": "Image deleted", "imageId": image_id}


# --- tags --------------------------------------------------------------------------------

TAG_ATTEMPTS = 4
"""Times a tag change is tried when other changes of the same image's tags keep coming first."""


def _route_tags(req: Request) -> tuple[int, dict[str, Any]]:
    """``POST /images/{imageId}/tags`` ``{"set": {k: v}, "remove": [k]}``: the image with its
    new tags. A read, then a write conditional on nobody having changed the tags meanwhile."""
    image_id = _image_id(req.params)
    req.log.update(imageId=image_id)
    change = rules.validate_tag_change(_json_object(_raw_body(req.event)))
    for _ in range(TAG_ATTEMPTS):
        record = req.store.get(image_id)
        if record is None or record.status != storage.READY:
            raise HttpError(404, "Image not found", extra={"imageId": image_id})
        tags = change.apply(record.tags or {})
        if req.store.replace_tags(record, tags):
            req.log.update(tags=len(tags))
            return 200, req.image_json(dataclasses.replace(record, tags=tags or None))
    raise _busy()


# (method, resource template, route); the path regex is derived from the template.
_ROUTES: dict[str, list[tuple[str, str, Route]]] = {
    "upload": [("POST", "/upload", _route_upload), ("POST", "/uploads", _route_uploads)],
    "images": [
        ("GET", "/images", _route_list),
        ("GET", "/images/{imageId}", _route_get),
        ("POST", "/images/{imageId}/tags", _route_tags),
        ("POST", "/images/{imageId}/share", _route_share),
        ("GET", "/share/{token}", _route_open_share),
    ],
    "complete": [
        ("POST", "/images/{imageId}/complete", _route_complete),
        ("POST", "/uploads/complete", _route_complete_many),
    ],
    "delete": [("DELETE", "/images/{imageId}", _route_delete)],
}
_ALL_TEMPLATES = {template for routes in _ROUTES.values() for _, template, _ in routes}


_PARAM_RE = re.compile(r"\{(\w+)\}")


def _template_regex(template: str) -> re.Pattern[str]:
    # An optional leading stage segment ("/v1/upload"), then the template, then an optional "/".
    parts = _PARAM_RE.split(template)  # literal, name, literal, name, ..., literal
    body = "".join(re.escape(part) if i % 2 == 0 else f"(?P<{part}>[^/]+)" for i, part in enumerate(parts))
    return re.compile(rf"(?:/[^/]+)?{body}/?")


_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_TEMPLATE_RES = {template: _template_regex(template) for template in _ALL_TEMPLATES}


def _match(event: Mapping[str, Any], function: str) -> tuple[str, str, Route, dict[str, str]]:
    """The (method, template, route, path parameters) that the event asks this function for."""
    method = event.get("httpMethod")
    if not isinstance(method, str):
        raise HttpError(400, "Not an API Gateway request")
    method = method.upper()
    template: str | None = None
    params: dict[str, str] = {}
    resource = event.get("resource")
    if isinstance(resource, str) and resource in _ALL_TEMPLATES:
        template = resource
        given = event.get("pathParameters")
        for name in _PARAM_RE.findall(template):
            if isinstance(given, dict) and isinstance(given.get(name), str):
                params[name] = given[name]
    if template is None or len(params) < len(_PARAM_RE.findall(template)):
        path = event.get("path")
        if not isinstance(path, str):
            raise HttpError(404, "Not found")
        # Longest template first, so ".../complete" is not read as an image id "complete".
        for candidate in sorted(_ALL_TEMPLATES, key=len, reverse=True):
            found = _TEMPLATE_RES[candidate].fullmatch(path)
            if found:
                template = candidate
                params = dict(found.groupdict())
                break
        else:
            raise HttpError(404, "Not found")
    allowed = [m for m, t, _ in _ROUTES[function] if t == template]
    for route_method, route_template, route in _ROUTES[function]:
        if route_template == template and route_method == method:
            return method, template, route, params
    if allowed:
        raise HttpError(
            405,
            f"Method {method} is not allowed here" if method in _METHODS else "Method not allowed",
            headers={"Allow": ",".join(allowed)},
        )
    raise HttpError(404, "Not found")


def _serve(function: str, event: Any, context: Any, environ: Mapping[str, str] | None) -> dict[str, Any]:
    started = time.monotonic()
    env = os.environ if environ is None else environ
    request_id = _request_id(event, context)
    origin = (env.get("ALLOWED_ORIGIN") or "*").strip() or "*"
    fields: dict[str, Any] = {
        "event": "request",
        "function": function,
        "requestId": request_id,
    }
    status = 500
    try:
        if not isinstance(event, dict):
            raise HttpError(400, "Not an API Gateway request")
        if str(event.get("httpMethod", "")).upper() == "OPTIONS":
            fields.update(method="OPTIONS")
            status = 204
            return _answer(204, None, origin, request_id)
        method, template, route, params = _match(event, function)
        fields.update(method=method, route=template)
        settings = Settings.from_environ(env)
        origin = settings.allowed_origin
        connection = clients(settings.connection)
        req = Request(
            settings=settings,
            s3=connection.s3,
            store=ImageStore(connection.dynamodb, settings.table_name),
            event=event,
            params=params,
            request_id=request_id,
            log=fields,
            credentials=connection.session.get_credentials(),
        )
        status, body, *extra = route(req)
        answer = _answer(status, body, origin, request_id)
        for headers in extra:
            answer["headers"].update(headers)
        return answer
    except rules.ValidationError as exc:
        status = exc.status
        body = {"error": exc.message}
        if exc.field:
            body["field"] = exc.field
        fields.update(error=exc.message)
        return _answer(status, body, origin, request_id)
    except HttpError as exc:
        status = exc.status
        fields.update(error=exc.message)
        answer = _answer(status, {"error": exc.message, **exc.extra}, origin, request_id)
        answer["headers"].update(exc.headers)
        return answer
    except Exception as exc:  # noqa: BLE001 - the one place that turns any fault into a 500
        status = 500
        _log(logging.ERROR, _error_fields(fields, exc))
        return _answer(500, {"error": INTERNAL_ERROR, "requestId": request_id}, origin, request_id)
    finally:
        fields.update(status=status, durationMs=round((time.monotonic() - started) * 1000, 1))
        _log(logging.INFO if status < 500 else logging.ERROR, fields)


def _error_fields(fields: Mapping[str, Any], exc: BaseException) -> dict[str, Any]:
    kind = "configuration" if isinstance(exc, ConfigError) else "unexpected"
    return {
        **fields,
        "event": "error",
        "kind": kind,
        "errorType": type(exc).__name__,
        "error": str(exc)[:1000],
        "traceback": traceback.format_exc(limit=20)[-4000:],
    }


def _complete(
    settings: Settings,
    s3: Any,
    store: ImageStore,
    record: ImageRecord,
    written: completion.ObjectWritten | None = None,
) -> completion.Outcome:
    outcome = _check(settings, s3, store, record, written)
    if outcome.made and outcome.kind == "ready":
        thumbnails.request(settings, record.image_id)
    return outcome  # (a batch completes with _check, then asks for its thumbnails at once)


def _check(
    settings: Settings,
    s3: Any,
    store: ImageStore,
    record: ImageRecord,
    written: completion.ObjectWritten | None,
) -> completion.Outcome:
    return completion.complete(
        s3,
        store,
        bucket=settings.bucket_name,
        record=record,
        max_bytes=settings.max_upload_bytes,
        now=clock(),
        pending_ttl_seconds=settings.pending_ttl_seconds,
        written=written,
    )


# --- S3 events ---------------------------------------------------------------------------


def _object_created(
    settings: Settings, s3: Any, store: ImageStore, key: str, version_id: str | None
) -> dict[str, Any]:
    """Complete the upload that wrote ``key``; delete what is written under images/ with no record."""
    parts = key.split("/")
    if parts[0] != "images" or len(parts) < 2:
        return {"outcome": "ignored"}
    image_id = parts[1]
    record = store.get(image_id) if rules.is_image_id(image_id) else None
    if record is None or record.s3_key != key:
        if version_id is None:
            info = storage.head_object(s3, bucket=settings.bucket_name, key=key)
            version_id = None if info is None else info.version_id
        storage.delete_object(s3, bucket=settings.bucket_name, key=key, version_id=version_id)
        orphan = {"outcome": "deleted_orphan"}
        if rules.is_image_id(image_id):
            orphan["imageId"] = image_id
        return orphan
    outcome = _complete(settings, s3, store, record, completion.ObjectWritten(version_id))
    result = {"outcome": outcome.kind, "imageId": image_id}
    if outcome.kind == "rejected" and outcome.record.reason:
        result["reason"] = outcome.record.reason
    if outcome.removed_version:
        result["removedVersion"] = outcome.removed_version
    return result


def _serve_s3_event(event: Mapping[str, Any], context: Any, environ: Mapping[str, str]) -> dict[str, Any]:
    """Run the completion check for each ObjectCreated record of an S3 event.

    A bad upload never makes this raise (S3 would only retry it); an unexpected failure does,
    after every record was tried, so that Lambda retries the event (the check is idempotent).
    """
    request_id = _request_id(event, context)
    settings = Settings.from_environ(environ)
    connection = clients(settings.connection)
    store = ImageStore(connection.dynamodb, settings.table_name)
    results: list[dict[str, Any]] = []
    failures = 0
    for position, entry in enumerate(event.get("Records") or []):
        started = time.monotonic()
        fields: dict[str, Any] = {
            "event": "s3",
            "function": "complete",
            "requestId": request_id,
            "record": position,
        }
        try:
            result = _s3_record(settings, connection.s3, store, entry)
        except Exception as exc:  # noqa: BLE001 - try every record, then raise (below)
            failures += 1
            result = {"outcome": "error"}
            _log(logging.ERROR, _error_fields(fields, exc))
        fields.update(result, durationMs=round((time.monotonic() - started) * 1000, 1))
        _log(logging.INFO if result["outcome"] != "error" else logging.ERROR, fields)
        results.append(result)
    if failures:
        raise RuntimeError(f"{failures} of {len(results)} S3 records failed (request {request_id})")
    return {"requestId": request_id, "results": results}


def _s3_record(settings: Settings, s3: Any, store: ImageStore, entry: Any) -> dict[str, Any]:
    if not isinstance(entry, dict):
        return {"outcome": "ignored"}
    name = entry.get("eventName")
    if isinstance(name, str) and not name.startswith("ObjectCreated"):
        return {"outcome": "ignored"}
    s3_part = entry.get("s3")
    if not isinstance(s3_part, dict):
        return {"outcome": "ignored"}
    bucket = (s3_part.get("bucket") or {}).get("name")
    written = s3_part.get("object") or {}
    raw_key = written.get("key")
    if not isinstance(raw_key, str) or not raw_key:
        return {"outcome": "ignored"}
    if bucket is not None and bucket != settings.bucket_name:
        return {"outcome": "ignored", "bucketMismatch": True}
    # S3 names the version it wrote in a versioned bucket; without it, HEAD says (fallback).
    version = written.get("versionId")
    version_id = version if isinstance(version, str) and 0 < len(version) <= 1024 else None
    return _object_created(settings, s3, store, unquote_plus(raw_key), version_id)


# --- entry points ------------------------------------------------------------------------


def upload(event: Any, context: Any = None, environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """``POST /upload``: validate the request, record it pending, presign the PUT."""
    return _serve("upload", event, context, environ)


def images(event: Any, context: Any = None, environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """``GET /images`` (filtered, newest or oldest first, ready only, cursor pagination),
    ``GET /images/{imageId}``, ``POST /images/{imageId}/tags``, ``POST /images/{imageId}/share``
    and ``GET /share/{token}``."""
    return _serve("images", event, context, environ)


def complete(event: Any, context: Any = None, environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """``POST /images/{imageId}/complete``, and S3 ObjectCreated events for ``images/``."""
    if isinstance(event, dict) and isinstance(event.get("Records"), list):
        return _serve_s3_event(event, context, os.environ if environ is None else environ)
    return _serve("complete", event, context, environ)


def delete(event: Any, context: Any = None, environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """``DELETE /images/{imageId}``: the record, then the object."""
    return _serve("delete", event, context, environ)
