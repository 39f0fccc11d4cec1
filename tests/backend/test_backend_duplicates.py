"""No duplicates: an upload that declares the SHA-256 of a ready image is answered with that
image, found by a Query on the sparse ReadyBySha256 index (never a Scan), on both presign
routes; the original API (no digest) is unaffected."""

from __future__ import annotations

from typing import Any

from backend_support import (
    PNG,
    TABLE,
    Stack,
    answer_json,
    call_delete,
    call_upload,
    counted_calls,
    handlers,
    operations,
    png_bytes,
    sha256_hex,
    start_upload,
    upload_ready,
)
from backend_support import api_event as event


def call_uploads(stack: Stack, files: list[dict[str, Any]]) -> dict[str, Any]:
    return handlers.upload(event("POST", "/uploads", body={"files": files}), None, stack.env)


def declared(data: bytes, name: str = "again.png", **extra: Any) -> dict[str, Any]:
    return {
        "fileName": name,
        "fileType": "image/png",
        "fileSize": len(data),
        "sha256": sha256_hex(data),
        **extra,
    }


def records(stack: Stack) -> int:
    return stack.dynamodb.scan(TableName=TABLE, Select="COUNT")["Count"]


def test_bytes_already_in_the_gallery_are_answered_with_that_image_and_nothing_is_stored(
    stack: Stack,
) -> None:
    first = upload_ready(stack, PNG, name="first.png")
    before = (records(stack), stack.objects())

    answer = call_upload(stack, declared(PNG))

    assert answer["statusCode"] == 200
    body = answer_json(answer)
    assert body["duplicate"] is True and body["imageId"] == first
    assert body["fileName"] == "first.png" and body["sha256"] == sha256_hex(PNG)
    assert "uploadUrl" not in body and body["fileUrl"]
    assert (records(stack), stack.objects()) == before


def test_the_lookup_is_one_query_of_the_sha256_index_never_a_scan(stack: Stack) -> None:
    upload_ready(stack, PNG)
    with counted_calls(stack.env) as calls:
        call_upload(stack, declared(PNG))
    assert operations(calls) == ["Query"]
    assert calls[0].body["IndexName"] == "ReadyBySha256"


def test_allow_duplicates_stores_a_second_copy(stack: Stack) -> None:
    first = upload_ready(stack, PNG)
    body = start_upload(stack, PNG, sha256=sha256_hex(PNG), allowDuplicates=True)
    assert body["imageId"] != first and body["uploadUrl"]
    assert "duplicate" not in body


def test_the_original_client_sends_no_digest_and_gets_a_grant_without_any_lookup(stack: Stack) -> None:
    upload_ready(stack, PNG)
    with counted_calls(stack.env) as calls:
        answer = call_upload(stack, {"fileName": "again.png", "fileType": "image/png", "fileSize": len(PNG)})
    assert answer_json(answer)["uploadUrl"]
    assert "Query" not in operations(calls)


def test_a_pending_or_deleted_image_is_not_a_duplicate(stack: Stack) -> None:
    start_upload(stack, PNG, sha256=sha256_hex(PNG))  # pending: its record declares the digest
    assert "duplicate" not in answer_json(call_upload(stack, declared(PNG)))
    other = png_bytes(321)
    image_id = upload_ready(stack, other)
    assert answer_json(call_upload(stack, declared(other)))["duplicate"] is True
    call_delete(stack, image_id)
    assert "duplicate" not in answer_json(call_upload(stack, declared(other)))


def test_the_batch_route_answers_each_entry_on_its_own(stack: Stack) -> None:
    known = upload_ready(stack, PNG, name="known.png")
    new = png_bytes(777)
    files = [
        declared(PNG, "a.png"),
        declared(new, "b.png"),
        {"fileName": "c.svg", "fileType": "image/svg+xml", "fileSize": 3},
        declared(PNG, "d.png", allowDuplicates=True),
        declared(PNG, "e.png"),
    ]
    with counted_calls(stack.env) as calls:
        uploads = answer_json(call_uploads(stack, files))["uploads"]
    assert [u["index"] for u in uploads] == [0, 1, 2, 3, 4]
    assert uploads[0]["duplicate"] is True and uploads[0]["imageId"] == known
    assert uploads[1]["uploadUrl"] and "duplicate" not in uploads[1]
    assert uploads[2]["status"] == 400
    assert uploads[3]["uploadUrl"] and uploads[3]["imageId"] != known
    assert uploads[4]["imageId"] == known
    # One Query per distinct digest looked up (PNG's and new's), however often each appears.
    assert operations(calls).count("Query") == 2


def test_allow_duplicates_must_be_a_boolean(stack: Stack) -> None:
    answer = call_upload(stack, declared(PNG, allowDuplicates="yes"))
    assert answer["statusCode"] == 400
    assert answer_json(answer)["field"] == "allowDuplicates"


def test_a_ready_record_carries_its_digest_in_the_sparse_index_and_a_rejected_one_does_not(
    stack: Stack,
) -> None:
    image_id = upload_ready(stack, PNG)
    assert stack.record(image_id)["readySha256"] == {"S": sha256_hex(PNG)}
    lie = start_upload(stack, b"not an image at all", name="lie.png")
    stack.put(stack.record(lie["imageId"])["s3Key"]["S"], b"not an image at all")
    handlers.complete(
        event("POST", "/images/{imageId}/complete", path_params={"imageId": lie["imageId"]}), None, stack.env
    )
    assert stack.record(lie["imageId"])["status"] == {"S": "rejected"}
    assert "readySha256" not in stack.record(lie["imageId"])
