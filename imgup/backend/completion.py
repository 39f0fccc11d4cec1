"""Completing an upload: check the stored object against its record, then mark it ready or reject it.

Both the client's ``POST /images/{id}/complete`` and the bucket's ObjectCreated event come
here. The check trusts nothing the uploader said: the object's size must equal the size that
was presigned (and be within the limit), its first bytes must show the declared format, and
when a SHA-256 was declared the object must hash to it. moto enforces no presigned-URL rule,
so on the local stack this check is the only defence; on AWS it is the second.

State changes are conditional (:class:`~.storage.ImageStore`): when the client's call and the
event race, one wins and the other reports what the winner decided. A rejection is recorded
before the object is deleted, so a concurrent check cannot mark ready an object that is about
to vanish.

Outcomes: ``ready`` (200), ``rejected`` (413 when too large, else 422; the object is deleted),
``not_arrived`` (409; the record stays pending, TTL removes it if nothing ever comes), ``gone``
(404; deleted meanwhile).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from . import rules, storage
from .storage import ImageRecord, ImageStore

__all__ = ["Outcome", "Verdict", "check_object", "complete", "status_for_reason"]

TOO_LARGE = "Too large"
NOT_AN_IMAGE = "Not an image"
TYPE_MISMATCH = "Type mismatch"
SIZE_MISMATCH = "Size mismatch"
CHECKSUM_MISMATCH = "Checksum mismatch"
CHANGING = "Object changing"


def status_for_reason(reason: str | None) -> int:
    """The HTTP status of a rejection, from the category that opens its reason."""
    return 413 if (reason or "").startswith(TOO_LARGE) else 422


@dataclass(frozen=True)
class Verdict:
    """What the stored object is: absent, acceptable (with its SHA-256 and its pixel size), or
    refused (why)."""

    arrived: bool
    reason: str | None = None
    sha256: str | None = None
    width: int = 0
    height: int = 0

    @property
    def ok(self) -> bool:
        return self.arrived and self.reason is None


NOT_ARRIVED = Verdict(arrived=False)


def _size_reason(actual: int, record: ImageRecord, max_bytes: int) -> str | None:
    declared = record.file_size
    if actual > max_bytes:
        return (
            f"{TOO_LARGE}: the uploaded file is {rules.format_size(actual)}, over the limit "
            f"({rules.format_size(max_bytes)})"
        )
    if actual > declared:
        return f"{TOO_LARGE}: the uploaded file has {actual} bytes, but {declared} were declared"
    if actual != declared:
        return f"{SIZE_MISMATCH}: the uploaded file has {actual} bytes, but {declared} were declared"
    return None


def format_reason(header: rules.ImageHeader, declared_type: str) -> str | None:
    """Why an object whose header is ``header`` cannot complete an upload declared as
    ``declared_type``, or None when it can."""
    declared = rules.TYPE_LABELS.get(declared_type, declared_type)
    if header.problem is not None or not header.is_image:
        return f"{NOT_AN_IMAGE}: {header.problem or rules.NOT_AN_ALLOWED_IMAGE} (declared {declared})"
    if header.file_type != declared_type:
        return (
            f"{TYPE_MISMATCH}: the file is a {rules.TYPE_LABELS[header.file_type or '']} image, "
            f"but {declared} was declared"
        )
    return None


def check_object(s3: Any, *, bucket: str, record: ImageRecord, max_bytes: int) -> Verdict:
    """Check the object at ``record.s3_key`` against the record and the size limit."""
    for _ in range(3):
        info = storage.head_object(s3, bucket=bucket, key=record.s3_key)
        if info is None:
            return NOT_ARRIVED
        reason = _size_reason(info.size, record, max_bytes)
        if reason:
            return Verdict(arrived=True, reason=reason)
        try:
            content = storage.read_object(
                s3,
                bucket=bucket,
                key=record.s3_key,
                max_bytes=record.file_size,
                etag=info.etag,
            )
            if content is None:
                return NOT_ARRIVED
            reason = _size_reason(content.size, record, max_bytes)
            if reason:
                return Verdict(arrived=True, reason=reason)
            header = rules.read_image_header(
                _reader(s3, bucket, record.s3_key, info.etag, content.head), content.size
            )
        except storage.ObjectChanged:
            continue  # replaced between HEAD and GET: look at the new one
        reason = format_reason(header, record.file_type)
        if reason:
            return Verdict(arrived=True, reason=reason)
        if record.sha256 is not None and content.sha256 != record.sha256:
            return Verdict(
                arrived=True,
                reason=f"{CHECKSUM_MISMATCH}: the file's SHA-256 is not the one declared",
            )
        return Verdict(arrived=True, sha256=content.sha256, width=header.width, height=header.height)
    return Verdict(
        arrived=True,
        reason=f"{CHANGING}: the object kept changing while it was checked",
    )


def _reader(s3: Any, bucket: str, key: str, etag: str | None, head: bytes) -> Callable[[int, int], bytes]:
    """``read(offset, length)`` for rules.read_image_header: the bytes already read, then ranged GETs."""

    def read(offset: int, length: int) -> bytes:
        if offset + length <= len(head):
            return head[offset : offset + length]
        return storage.read_range(s3, bucket=bucket, key=key, offset=offset, length=length, etag=etag)

    return read


@dataclass(frozen=True)
class Outcome:
    """How a completion ended, and the record now.

    ``ready``, ``rejected``, ``not_arrived``, or ``gone`` (the record was deleted meanwhile).
    """

    kind: str
    record: ImageRecord

    @property
    def status(self) -> int:
        if self.kind == "ready":
            return 200
        if self.kind == "not_arrived":
            return 409
        if self.kind == "gone":
            return 404
        return status_for_reason(self.record.reason)


def _reject(
    s3: Any,
    store: ImageStore,
    *,
    bucket: str,
    record: ImageRecord,
    reason: str,
    purge_at: int,
) -> bool:
    if not store.mark_rejected(
        record.image_id, reason=reason, purge_at=purge_at, expected_status=record.status
    ):
        return False
    storage.delete_object(s3, bucket=bucket, key=record.s3_key)
    return True


def complete(
    s3: Any,
    store: ImageStore,
    *,
    bucket: str,
    record: ImageRecord,
    max_bytes: int,
    now: datetime,
    pending_ttl_seconds: int,
    from_event: bool = False,
) -> Outcome:
    """Complete the upload of ``record``: check its object, then mark it ready or reject it.

    A ready record is answered as it is when the client asks again; on an ObjectCreated event
    (``from_event``) its object is checked again, because the event means that something was
    written over it, and a changed object is rejected like a lie at first completion.
    """
    purge_at = int(now.timestamp()) + pending_ttl_seconds
    for _ in range(4):
        if record.status == storage.REJECTED:
            return Outcome("rejected", record)
        if record.status == storage.READY and not from_event:
            return Outcome("ready", record)
        verdict = check_object(s3, bucket=bucket, record=record, max_bytes=max_bytes)
        if record.status == storage.READY:
            if verdict.ok or not verdict.arrived:
                return Outcome("ready", record)
        elif not verdict.arrived:
            # Absent, or just deleted by a concurrent check that rejected it: the record says.
            fresh = store.get(record.image_id)
            if fresh is None:
                return Outcome("gone", record)
            if fresh.status == storage.PENDING:
                return Outcome("not_arrived", fresh)
            record = fresh
            continue
        elif verdict.ok:
            uploaded_at = rules.format_timestamp(now)
            sha256 = verdict.sha256 or ""
            if store.mark_ready(
                record.image_id,
                uploaded_at=uploaded_at,
                sha256=sha256,
                width=verdict.width,
                height=verdict.height,
            ):
                ready = replace(
                    record,
                    status=storage.READY,
                    uploaded_at=uploaded_at,
                    sha256=sha256,
                    purge_at=None,
                    width=verdict.width,
                    height=verdict.height,
                )
                return Outcome("ready", ready)
        if verdict.reason is not None and _reject(
            s3,
            store,
            bucket=bucket,
            record=record,
            reason=verdict.reason,
            purge_at=purge_at,
        ):
            rejected = replace(
                record,
                status=storage.REJECTED,
                reason=verdict.reason,
                purge_at=purge_at,
                uploaded_at=None,
            )
            return Outcome("rejected", rejected)
        # Someone else changed the record meanwhile: look again at what it is now.
        fresh = store.get(record.image_id)
        if fresh is None:
            return Outcome("gone", record)
        record = fresh
    raise RuntimeError("the record kept changing while the upload was completed")
