"""imgup.doctor.check against moto: it notices every way an object can differ from what its
record promises (the pinned version gone or no longer current, size or checksum), and
objects that no record owns, in any version."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import boto3
import pytest
from backend_support import BUCKET, REGION, SAMPLES, TABLE, Stack, s3_event
from test_backend_handlers import OTHER_PNG, PNG, call_delete, key_of, start_upload, upload_ready

from imgup.aws import AwsTarget
from imgup.backend import handlers
from imgup.doctor import check


def doctor(stack: Stack, *, verify_checksums: bool = True) -> dict[str, Any]:
    target = AwsTarget(boto3.session.Session(region_name=REGION))
    deployment: Any = SimpleNamespace(table=TABLE, bucket=BUCKET)
    return check(target, deployment, verify_checksums=verify_checksums).as_dict()


def kinds(report: dict[str, Any]) -> list[tuple[str, str]]:
    return [(p["kind"], p["subject"]) for p in report["problems"]]


def test_a_gallery_of_completed_images_is_healthy(stack: Stack) -> None:
    for kind, data in SAMPLES.items():
        upload_ready(stack, data, file_type=kind)
    report = doctor(stack)
    assert report == {"healthy": True, "records": {"ready": 4}, "objects": 4, "problems": []}


def test_a_later_put_that_its_event_removed_leaves_the_gallery_healthy(stack: Stack) -> None:
    image_id = upload_ready(stack, PNG)
    key = key_of(stack, image_id)
    handlers.complete(s3_event(key, version_id=stack.put(key, OTHER_PNG)), None, stack.env)
    assert doctor(stack)["healthy"] is True


def test_an_object_overwritten_behind_the_records_back_is_not_current(stack: Stack) -> None:
    image_id = upload_ready(stack, PNG)
    stack.put(key_of(stack, image_id), OTHER_PNG)  # and no event ran
    report = doctor(stack)
    assert kinds(report) == [("not-current", image_id)]
    assert "not the verified" in report["problems"][0]["detail"]


def test_a_pinned_version_that_is_gone_is_a_missing_object(stack: Stack) -> None:
    image_id = upload_ready(stack, PNG)
    record = stack.record(image_id)
    stack.s3.delete_object(Bucket=BUCKET, Key=record["s3Key"]["S"], VersionId=record["versionId"]["S"])
    assert kinds(doctor(stack)) == [("missing-object", image_id)]


def test_a_current_object_hidden_by_a_delete_marker_is_not_current(stack: Stack) -> None:
    image_id = upload_ready(stack, PNG)
    stack.s3.delete_object(Bucket=BUCKET, Key=key_of(stack, image_id))  # a delete marker on top
    report = doctor(stack)
    assert kinds(report) == [("not-current", image_id)]
    assert "delete marker" in report["problems"][0]["detail"]


@pytest.mark.parametrize(
    ("attribute", "value", "kind"),
    [("fileSize", {"N": "5"}, "size-mismatch"), ("sha256", {"S": "0" * 64}, "checksum-mismatch")],
)
def test_a_record_that_promises_other_bytes_than_its_version_holds_is_found(
    stack: Stack, attribute: str, value: dict, kind: str
) -> None:
    image_id = upload_ready(stack, PNG)
    stack.dynamodb.update_item(
        TableName=TABLE,
        Key={"imageId": {"S": image_id}},
        UpdateExpression="SET #a = :v",
        ExpressionAttributeNames={"#a": attribute},
        ExpressionAttributeValues={":v": value},
    )
    assert kinds(doctor(stack)) == [(kind, image_id)]
    if kind == "checksum-mismatch":
        assert doctor(stack, verify_checksums=False)["healthy"] is True


def test_without_versioning_a_tampered_object_is_a_checksum_mismatch(unversioned_stack: Stack) -> None:
    image_id = upload_ready(unversioned_stack, PNG)
    unversioned_stack.put(key_of(unversioned_stack, image_id), OTHER_PNG)
    assert kinds(doctor(unversioned_stack)) == [("checksum-mismatch", image_id)]


def test_a_version_left_by_a_deleted_image_is_an_orphan(stack: Stack) -> None:
    image_id = upload_ready(stack, PNG)
    key = key_of(stack, image_id)
    assert call_delete(stack, image_id)["statusCode"] == 200
    assert doctor(stack)["healthy"] is True
    stack.put(key, PNG)
    stack.s3.delete_object(Bucket=BUCKET, Key=key)  # only a noncurrent version is left
    report = doctor(stack)
    assert kinds(report) == [("orphan-object", key)]
    assert report["objects"] == 0


def test_a_version_left_under_a_rejected_upload_is_a_leak(stack: Stack) -> None:
    started = start_upload(stack, PNG)
    key = key_of(stack, started["imageId"])
    stack.put(key, b"z" * len(PNG))
    handlers.complete(s3_event(key), None, stack.env)  # rejected, its version deleted
    assert doctor(stack)["healthy"] is True
    stack.put(key, PNG)  # and no event ran
    assert kinds(doctor(stack)) == [("leaked-object", key)]
