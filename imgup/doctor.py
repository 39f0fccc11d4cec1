"""The consistency check behind ``imgup doctor``.

It reads the table and the bucket directly (not through the API) and checks the system's
invariants, which every run must preserve, faults or not:

- every ``ready`` record's object is what the record promises: the version it pins
  (``versionId``) exists, is the key's current version, and has the recorded size and SHA-256
  (a record without a pinned version, from a bucket without versioning, is checked against
  the current object);
- every object under ``images/`` (any version) belongs to a record that is ``ready`` or still
  ``pending`` (an upload in flight); an object without a record, or of a rejected record, is a
  leak;
- only ``ready`` records carry the gallery index key (so nothing else is ever listed).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from .aws import AwsTarget, translate_errors
from .backend.storage import PENDING, READY, ImageRecord
from .config import Deployment


@dataclass(frozen=True)
class Problem:
    kind: str  # missing-object, not-current, size-mismatch, checksum-mismatch, orphan-object, ...
    subject: str  # an image id or an S3 key
    detail: str

    def as_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "subject": self.subject, "detail": self.detail}


@dataclass
class Report:
    records: Counter[str] = field(default_factory=Counter)
    objects: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def healthy(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        return {
            "healthy": self.healthy,
            "records": dict(sorted(self.records.items())),
            "objects": self.objects,
            "problems": [p.as_dict() for p in self.problems],
        }


@dataclass(frozen=True)
class Version:
    """One version of an object (or a delete marker: ``size`` None)."""

    version_id: str
    size: int | None
    latest: bool


@dataclass
class Key:
    """Every version of one key, and the current one (None: none, or a delete marker)."""

    versions: dict[str, Version] = field(default_factory=dict)

    @property
    def current(self) -> Version | None:
        latest = next((v for v in self.versions.values() if v.latest), None)
        return None if latest is None or latest.size is None else latest

    @property
    def stored(self) -> bool:
        return any(v.size is not None for v in self.versions.values())


def _records(target: AwsTarget, table: str) -> list[tuple[ImageRecord, dict[str, Any]]]:
    dynamodb = target.client("dynamodb")
    found: list[tuple[ImageRecord, dict[str, Any]]] = []
    with translate_errors(f"Reading table {table}"):
        for page in dynamodb.get_paginator("scan").paginate(TableName=table, ConsistentRead=True):
            found.extend((ImageRecord.from_item(item), item) for item in page.get("Items", []))
    return found


def _keys(target: AwsTarget, bucket: str) -> dict[str, Key]:
    s3 = target.client("s3")
    found: dict[str, Key] = {}
    with translate_errors(f"Listing bucket {bucket}"):
        for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix="images/"):
            for item in page.get("Versions", []):
                version = Version(
                    item.get("VersionId") or "null", int(item["Size"]), bool(item.get("IsLatest"))
                )
                found.setdefault(item["Key"], Key()).versions[version.version_id] = version
            for item in page.get("DeleteMarkers", []):
                marker = Version(item.get("VersionId") or "null", None, bool(item.get("IsLatest")))
                found.setdefault(item["Key"], Key()).versions[marker.version_id] = marker
    return found


def _sha256(target: AwsTarget, bucket: str, key: str, version_id: str | None) -> str:
    digest = hashlib.sha256()
    kwargs = {"Bucket": bucket, "Key": key}
    if version_id:
        kwargs["VersionId"] = version_id
    with translate_errors(f"Reading s3://{bucket}/{key}"):
        body = target.client("s3").get_object(**kwargs)["Body"]
        for chunk in iter(lambda: body.read(1024 * 1024), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _check_ready(record: ImageRecord, key: Key | None) -> tuple[list[Problem], Version | None]:
    """The problems of a ready record's object, and the version to verify the checksum of."""
    subject, path = record.image_id, record.s3_key
    current = None if key is None else key.current
    if record.version_id is None:
        if current is None:
            return [Problem("missing-object", subject, f"no object {path}")], None
        checked = current
    else:
        pinned = None if key is None else key.versions.get(record.version_id)
        if pinned is None or pinned.size is None:
            return [
                Problem("missing-object", subject, f"version {record.version_id} of {path} is gone")
            ], None
        checked = pinned
    problems = []
    if checked is not current:
        now = "a delete marker" if current is None else f"version {current.version_id}"
        problems.append(
            Problem("not-current", subject, f"{path} is now {now}, not the verified {record.version_id}")
        )
    if checked.size != record.file_size:
        problems.append(
            Problem("size-mismatch", subject, f"object has {checked.size} bytes, record {record.file_size}")
        )
        return problems, None
    return problems, checked


def check(target: AwsTarget, deployment: Deployment, *, verify_checksums: bool = True) -> Report:
    report = Report()
    records = _records(target, deployment.table)
    keys = _keys(target, deployment.bucket)
    report.objects = sum(1 for key in keys.values() if key.current is not None)
    owners: dict[str, ImageRecord] = {}
    for record, item in records:
        report.records[record.status or "unknown"] += 1
        owners[record.s3_key] = record
        listed = "galleryPk" in item
        if listed and record.status != READY:
            report.problems.append(
                Problem(
                    "listed-not-ready", record.image_id, f"{record.status} record is in the gallery index"
                )
            )
        if record.status != READY:
            continue
        if not listed:
            report.problems.append(Problem("ready-not-listed", record.image_id, "missing gallery index key"))
        problems, verify = _check_ready(record, keys.get(record.s3_key))
        report.problems.extend(problems)
        if verify is not None and verify_checksums and record.sha256:
            version = None if verify.version_id == "null" else verify.version_id
            actual = _sha256(target, deployment.bucket, record.s3_key, version)
            if actual != record.sha256:
                report.problems.append(
                    Problem(
                        "checksum-mismatch",
                        record.image_id,
                        f"object sha256 {actual}, record {record.sha256}",
                    )
                )
    for name in sorted(keys):
        if not keys[name].stored:
            continue
        owner = owners.get(name)
        if owner is None:
            report.problems.append(Problem("orphan-object", name, "no record owns this object"))
        elif owner.status not in (READY, PENDING):
            report.problems.append(Problem("leaked-object", name, f"its record is {owner.status}"))
    return report
