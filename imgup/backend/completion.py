"""Completing an upload: check the stored object against its record, then mark it ready or reject it.

Both the client's ``POST /images/{id}/complete`` and the bucket's ObjectCreated event come
here. The check trusts nothing the uploader said: the object's size must equal the size that
was presigned (and be within the limit), its header must parse as the declared format
(:func:`rules.probe_image`), and when a SHA-256 was declared the object must hash to it. moto
enforces no presigned-URL rule, so on the local stack this check is the only defence; on AWS
it is the second.

A ready record is pinned to the S3 version that was checked (``versionId``; the bucket is
versioned), and every ``fileUrl`` names that version, so what the record promises is what is
served, whatever is PUT later with a still-valid upload URL. An ObjectCreated event for a
ready record names another version: that version is deleted, and the verified one is current
again. A record without a pinned version (a bucket without versioning) is checked again
instead, and rejected when the object changed. A write to a rejected upload's key, or to the
key of a record deleted meanwhile, is deleted.

State changes are conditional (:class:`~.storage.ImageStore`): when the client's call and the
event race, one wins and the other reports what the winner decided. A rejection is recorded
before the version is deleted, so a concurrent check cannot mark ready an object that is about
to vanish; only the rejected version is deleted.

Outcomes: ``ready`` (200), ``rejected`` (413 when too large, else 422; the object is deleted),
``not_arrived`` (409; the record stays pending, TTL removes it if nothing ever comes), ``gone``
(404; deleted meanwhile).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from . import rules, storage
from .storage import ImageRecord, ImageStore

__all__ = ["ObjectWritten", "Outcome", "Verdict", "check_object", "complete", "status_for_reason"]

TOO_LARGE = "Too large"
NOT_AN_IMAGE = "Not an image"
TYPE_MISMATCH = "Type mismatch"
SIZE_MISMATCH = "Size mismatch"
CHECKSUM_MISMATCH = "Checksum mismatch"
CHANGING = "Object changing"
WHOLE_READ_BYTES = 1024 * 1024
"""Objects up to this size are checked from one GET of the whole object (see check_object)."""


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
    version_id: str | None = None

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


def check_object(
    s3: Any, *, bucket: str, record: ImageRecord, max_bytes: int, version_id: str | None = None
) -> Verdict:
    """Check the object at ``record.s3_key`` (the version ``version_id``, else the current one)
    against the record and the size limit.

    An object declared at most WHOLE_READ_BYTES is read whole with one GET, which says its
    size and version too: its size, header and SHA-256 are judged on the bytes. A larger one
    costs a HEAD first. When its upload declared a SHA-256, the presigned PUT signed it and S3
    verified the body against it: if HEAD (checksum mode) shows that S3 stored exactly that
    checksum, only the first bytes are read, for the header. Otherwise (nothing declared, or
    no checksum stored) the whole object is read and hashed.
    """
    if record.file_size <= WHOLE_READ_BYTES:
        return _check_whole(s3, bucket=bucket, record=record, max_bytes=max_bytes, version_id=version_id)
    for _ in range(3):
        info = storage.head_object(
            s3, bucket=bucket, key=record.s3_key, version_id=version_id, checksum=record.sha256 is not None
        )
        if info is None:
            return NOT_ARRIVED
        found = Verdict(arrived=True, version_id=info.version_id or version_id)
        reason = _size_reason(info.size, record, max_bytes)
        if reason:
            return replace(found, reason=reason)
        read = _Read(s3, bucket, record.s3_key, info.etag, found.version_id)
        try:
            if record.sha256 is not None and _stored_checksum(info) is not None:
                return _judge_stored(found, record, info, read)
            return _judge_read(found, record, info, read, max_bytes)
        except storage.ObjectChanged:
            continue  # replaced between HEAD and GET (no versioning): look at the new one
        except _Gone:
            return NOT_ARRIVED
    return Verdict(arrived=True, reason=f"{CHANGING}: the object kept changing while it was checked")


def _check_whole(
    s3: Any, *, bucket: str, record: ImageRecord, max_bytes: int, version_id: str | None
) -> Verdict:
    content = storage.read_object(
        s3,
        bucket=bucket,
        key=record.s3_key,
        max_bytes=record.file_size,
        version_id=version_id,
        keep=record.file_size,
    )
    if content is None:
        return NOT_ARRIVED
    found = Verdict(arrived=True, version_id=content.version_id or version_id)
    # what S3 says first (a larger object is not read past the declared size), then what came
    reason = _size_reason(content.length, record, max_bytes) or _size_reason(content.size, record, max_bytes)
    if reason:
        return replace(found, reason=reason)
    whole = content.head
    header = rules.read_image_header(lambda offset, length: whole[offset : offset + length], content.size)
    return _judge_content(found, record, content, header)


def _stored_checksum(info: storage.ObjectInfo) -> str | None:
    """The full-object SHA-256 S3 stored (base64), or None (none, or a multipart composite)."""
    stored = info.checksum_sha256
    return stored if stored and "-" not in stored else None


def _judge_stored(found: Verdict, record: ImageRecord, info: storage.ObjectInfo, read: _Read) -> Verdict:
    if _stored_checksum(info) != base64.b64encode(bytes.fromhex(record.sha256 or "")).decode("ascii"):
        return replace(found, reason=f"{CHECKSUM_MISMATCH}: the file's SHA-256 is not the one declared")
    header = rules.read_image_header(read, info.size)
    reason = format_reason(header, record.file_type)
    if reason:
        return replace(found, reason=reason)
    return replace(found, sha256=record.sha256, width=header.width, height=header.height)


def _judge_read(
    found: Verdict, record: ImageRecord, info: storage.ObjectInfo, read: _Read, max_bytes: int
) -> Verdict:
    content = storage.read_object(
        read.s3,
        bucket=read.bucket,
        key=read.key,
        max_bytes=record.file_size,
        etag=info.etag,
        version_id=found.version_id,
    )
    if content is None:
        raise _Gone
    reason = _size_reason(content.size, record, max_bytes)
    if reason:
        return replace(found, reason=reason)
    read.head = content.head
    return _judge_content(found, record, content, rules.read_image_header(read, content.size))


def _judge_content(
    found: Verdict, record: ImageRecord, content: storage.ObjectContent, header: rules.ImageHeader
) -> Verdict:
    """The verdict on an object read whole: its format, then its SHA-256 if one was declared."""
    reason = format_reason(header, record.file_type)
    if reason is None and record.sha256 is not None and content.sha256 != record.sha256:
        reason = f"{CHECKSUM_MISMATCH}: the file's SHA-256 is not the one declared"
    if reason:
        return replace(found, reason=reason)
    return replace(found, sha256=content.sha256, width=header.width, height=header.height)


class _Gone(Exception):
    """The object went away while it was read."""


@dataclass
class _Read:
    """``read(offset, length)`` for rules.read_image_header: the first bytes already read, if
    any, then ranged GETs of the same object (its version, or its ETag)."""

    s3: Any
    bucket: str
    key: str
    etag: str | None
    version_id: str | None
    head: bytes = b""

    def __call__(self, offset: int, length: int) -> bytes:
        if offset + length <= len(self.head):
            return self.head[offset : offset + length]
        data = storage.read_range(
            self.s3,
            bucket=self.bucket,
            key=self.key,
            offset=offset,
            length=length,
            etag=self.etag,
            version_id=self.version_id,
        )
        if data is None:
            raise _Gone
        return data


@dataclass(frozen=True)
class Outcome:
    """How a completion ended, and the record now.

    ``ready``, ``rejected``, ``not_arrived``, or ``gone`` (the record was deleted meanwhile).
    ``removed_version`` is the version of a later write that was deleted, if any.
    """

    kind: str
    record: ImageRecord
    removed_version: str | None = None
    made: bool = False
    """This completion made the transition (not a later check that found it done)."""

    @property
    def status(self) -> int:
        if self.kind == "ready":
            return 200
        if self.kind == "not_arrived":
            return 409
        if self.kind == "gone":
            return 404
        return status_for_reason(self.record.reason)


@dataclass(frozen=True)
class ObjectWritten:
    """An S3 ObjectCreated event for a record's key, and the version it wrote when it says."""

    version_id: str | None = None


class _Completion:
    def __init__(
        self, s3: Any, store: ImageStore, *, bucket: str, max_bytes: int, now: datetime, purge_at: int
    ) -> None:
        self.s3 = s3
        self.store = store
        self.bucket = bucket
        self.max_bytes = max_bytes
        self.now = now
        self.purge_at = purge_at

    def run(self, record: ImageRecord, written: ObjectWritten | None) -> Outcome:
        for _ in range(4):
            if record.status == storage.READY:
                return self.ready(record, written)
            if record.status == storage.REJECTED:
                removed = self.remove_written(record, written)
                return Outcome("rejected", record, removed)
            version = written.version_id if written else None
            verdict = check_object(
                self.s3, bucket=self.bucket, record=record, max_bytes=self.max_bytes, version_id=version
            )
            if verdict.arrived:
                done, fresh = self.settle(record, verdict)
                if done is not None:
                    return Outcome(done.status, done, made=True)
            else:  # absent, or just deleted by a concurrent check that rejected it
                fresh = self.store.get(record.image_id)
            # The record says what happened meanwhile.
            if fresh is None:
                return Outcome("gone", record, self.remove_written(record, written))
            if fresh.status == storage.PENDING and not verdict.arrived:
                return Outcome("not_arrived", fresh)
            record = fresh
        raise RuntimeError("the record kept changing while the upload was completed")

    def ready(self, record: ImageRecord, written: ObjectWritten | None) -> Outcome:
        """A ready record stays as it is; a later write to its key is deleted."""
        if written is None:  # the client asks again
            return Outcome("ready", record)
        if record.version_id is None:
            return self.recheck_unpinned(record)
        version = self.written_version(record, written)
        if version is None or version == record.version_id:
            return Outcome("ready", record)
        storage.delete_object(self.s3, bucket=self.bucket, key=record.s3_key, version_id=version)
        return Outcome("ready", record, version)

    def recheck_unpinned(self, record: ImageRecord) -> Outcome:
        """Without a pinned version (no versioning), the current object is all there is: check it
        again, and reject the image if it changed."""
        verdict = check_object(self.s3, bucket=self.bucket, record=record, max_bytes=self.max_bytes)
        if verdict.ok or not verdict.arrived:
            return Outcome("ready", record)
        rejected, fresh = self.settle(record, verdict)
        if rejected is not None:
            return Outcome("rejected", rejected)
        return Outcome("gone", record) if fresh is None else self.run(fresh, None)

    def written_version(self, record: ImageRecord, written: ObjectWritten) -> str | None:
        """The version an event wrote: as it says, else the current one (HEAD)."""
        if written.version_id:
            return written.version_id
        info = storage.head_object(self.s3, bucket=self.bucket, key=record.s3_key)
        return None if info is None else info.version_id

    def remove_written(self, record: ImageRecord, written: ObjectWritten | None) -> str | None:
        """Delete what an event wrote to the key of a rejected or deleted upload."""
        if written is None:
            return None
        version = self.written_version(record, written)
        storage.delete_object(self.s3, bucket=self.bucket, key=record.s3_key, version_id=version)
        return version

    def settle(self, record: ImageRecord, verdict: Verdict) -> tuple[ImageRecord | None, ImageRecord | None]:
        """Mark the record ready or rejected as the verdict says: (the record now, None); or,
        when someone changed it first, (None, the record as it is now, None when gone)."""
        if verdict.ok:
            ready = replace(
                record,
                status=storage.READY,
                uploaded_at=rules.format_timestamp(self.now),
                sha256=verdict.sha256 or "",
                purge_at=None,
                width=verdict.width,
                height=verdict.height,
                version_id=storage.version_of(verdict.version_id),
            )
            changed = self.store.mark_ready(ready)
            return (ready, None) if changed else (None, changed.current)
        # Record the rejection, then delete the rejected version (only that one).
        changed = self.store.mark_rejected(
            record.image_id,
            reason=verdict.reason or "",
            purge_at=self.purge_at,
            expected_status=record.status,
        )
        if not changed:
            return None, changed.current
        storage.delete_object(self.s3, bucket=self.bucket, key=record.s3_key, version_id=verdict.version_id)
        rejected = replace(
            record, status=storage.REJECTED, reason=verdict.reason, purge_at=self.purge_at, uploaded_at=None
        )
        return rejected, None


def complete(
    s3: Any,
    store: ImageStore,
    *,
    bucket: str,
    record: ImageRecord,
    max_bytes: int,
    now: datetime,
    pending_ttl_seconds: int,
    written: ObjectWritten | None = None,
) -> Outcome:
    """Complete the upload of ``record``: check its object, then mark it ready or reject it.

    ``written`` is set when an S3 ObjectCreated event asks (see the module docstring); a client
    asking again about a ready or rejected record gets the answer as it is, at no S3 cost.
    """
    return _Completion(
        s3,
        store,
        bucket=bucket,
        max_bytes=max_bytes,
        now=now,
        purge_at=int(now.timestamp()) + pending_ttl_seconds,
    ).run(record, written)
