"""The consistency check behind ``imgup doctor``.

It reads the table and the bucket directly (not through the API) and checks the system's
invariants, which every run must preserve, faults or not:

- every ``ready`` record has its object, with the recorded size and SHA-256;
- every object under ``images/`` belongs to a record that is ``ready`` or still ``pending``
  (an upload in flight); an object without a record, or of a rejected record, is a leak;
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
    kind: str  # missing-object, size-mismatch, checksum-mismatch, orphan-object, ...
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


def _records(target: AwsTarget, table: str) -> list[tuple[ImageRecord, dict[str, Any]]]:
    dynamodb = target.client("dynamodb")
    found: list[tuple[ImageRecord, dict[str, Any]]] = []
    with translate_errors(f"Reading table {table}"):
        for page in dynamodb.get_paginator("scan").paginate(TableName=table, ConsistentRead=True):
            found.extend((ImageRecord.from_item(item), item) for item in page.get("Items", []))
    return found


def _objects(target: AwsTarget, bucket: str) -> dict[str, int]:
    s3 = target.client("s3")
    found: dict[str, int] = {}
    with translate_errors(f"Listing bucket {bucket}"):
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="images/"):
            for item in page.get("Contents", []):
                found[item["Key"]] = int(item["Size"])
    return found


def _sha256(target: AwsTarget, bucket: str, key: str) -> str:
    digest = hashlib.sha256()
    with translate_errors(f"Reading s3://{bucket}/{key}"):
        body = target.client("s3").get_object(Bucket=bucket, Key=key)["Body"]
        for chunk in iter(lambda: body.read(1024 * 1024), b""):
            digest.update(chunk)
    return digest.hexdigest()


def check(target: AwsTarget, deployment: Deployment, *, verify_checksums: bool = True) -> Report:
    report = Report()
    records = _records(target, deployment.table)
    objects = _objects(target, deployment.bucket)
    report.objects = len(objects)
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
        size = objects.get(record.s3_key)
        if size is None:
            report.problems.append(Problem("missing-object", record.image_id, f"no object {record.s3_key}"))
            continue
        if size != record.file_size:
            report.problems.append(
                Problem(
                    "size-mismatch", record.image_id, f"object has {size} bytes, record {record.file_size}"
                )
            )
        elif verify_checksums and record.sha256:
            actual = _sha256(target, deployment.bucket, record.s3_key)
            if actual != record.sha256:
                report.problems.append(
                    Problem(
                        "checksum-mismatch",
                        record.image_id,
                        f"object sha256 {actual}, record {record.sha256}",
                    )
                )
    for key in sorted(objects):
        owner = owners.get(key)
        if owner is None:
            report.problems.append(Problem("orphan-object", key, "no record owns this object"))
        elif owner.status not in (READY, PENDING):
            report.problems.append(Problem("leaked-object", key, f"its record is {owner.status}"))
    return report
