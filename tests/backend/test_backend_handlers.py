"""Functional tests of the Lambda handlers: API Gateway and S3 events in, against moto."""

from __future__ import annotations

import base64
import json
import logging
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from backend_support import (
    API_KEY,
    BUCKET,
    OTHER_PNG,
    PNG,
    SAMPLES,
    Stack,
    answer_json,
    api_event,
    call_complete,
    call_delete,
    call_get,
    call_list,
    call_upload,
    jpeg_bytes,
    key_of,
    listed_ids,
    s3_event,
    sha256_hex,
    start_upload,
    upload_ready,
    webp_bytes,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imgup.backend import handlers, rules
from imgup.backend.settings import Settings, clients

ORIGINAL_IMAGE_FIELDS = {"imageId", "fileName", "fileUrl", "fileType", "fileSize", "uploadedAt"}


class Clock:
    """A clock for the handlers that moves one second per reading."""

    def __init__(self) -> None:
        self.now = datetime(2026, 11, 25, 12, 0, 0, tzinfo=timezone.utc)

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(handlers, "clock", fake)
    return fake


# --- the original contract ---------------------------------------------------------------


def test_the_original_clients_request_gets_the_original_answer_and_its_image_is_listed(stack: Stack) -> None:
    answer = call_upload(stack, {"fileName": "profile.jpg", "fileType": "image/jpeg", "fileSize": 2048576})
    body = answer_json(answer)
    assert answer["statusCode"] == 200
    assert body["message"] == "Upload URL generated successfully"
    assert {"uploadUrl", "fileUrl", "imageId", "message", "uploadHeaders", "expiresAt"} <= set(body)
    assert rules.is_image_id(body["imageId"])
    assert body["uploadHeaders"]["Content-Type"] == "image/jpeg"
    assert answer["headers"]["Access-Control-Allow-Origin"] == "*"

    # The original client PUTs with Content-Type and calls nothing else; S3 notifies.
    jpeg = SAMPLES["image/jpeg"][:-2] + b"\x00" * (2048576 - len(SAMPLES["image/jpeg"])) + b"\xff\xd9"
    key = key_of(stack, body["imageId"])
    stack.put(key, jpeg, "image/jpeg")
    handlers.complete(s3_event(key), None, stack.env)

    listing = answer_json(call_list(stack))
    assert listing["count"] == 1
    (image,) = listing["images"]
    assert ORIGINAL_IMAGE_FIELDS <= set(image)
    assert image["imageId"] == body["imageId"]
    assert (image["fileName"], image["fileType"], image["fileSize"]) == ("profile.jpg", "image/jpeg", 2048576)
    assert rules.is_timestamp(image["uploadedAt"])
    assert image["fileUrl"].startswith("https://")


def test_upload_answers_expiry_and_the_headers_to_send(stack: Stack, clock: Clock) -> None:
    data = SAMPLES["image/png"]
    body = start_upload(stack, data, sha256=sha256_hex(data))
    issued = clock.now
    assert body["expiresAt"] == rules.format_timestamp(issued + timedelta(seconds=300))
    headers = body["uploadHeaders"]
    assert headers["Content-Length"] == str(len(data))
    assert base64.b64decode(headers["x-amz-checksum-sha256"]).hex() == sha256_hex(data)
    assert "x-amz-checksum-sha256" in body["uploadUrl"].split("X-Amz-SignedHeaders=")[1].split("&")[0]


def test_upload_writes_a_pending_record_with_a_ttl_and_a_safe_key(stack: Stack, clock: Clock) -> None:
    body = start_upload(stack, SAMPLES["image/gif"], file_type="image/gif", name="My Cat (1).gif")
    record = stack.record(body["imageId"])
    assert record["status"]["S"] == "pending"
    assert record["fileName"]["S"] == "My Cat (1).gif"
    assert record["s3Key"]["S"] == f"images/{body['imageId']}/My_Cat_1.gif"
    assert int(record["purgeAt"]["N"]) == int(clock.now.timestamp()) + 86400
    assert "galleryPk" not in record and "uploadedAt" not in record


def test_image_jpg_is_stored_as_jpeg_but_signed_as_the_client_will_send_it(stack: Stack) -> None:
    body = start_upload(stack, SAMPLES["image/jpeg"], file_type="image/jpg", name="a.jpg")
    assert body["uploadHeaders"]["Content-Type"] == "image/jpg"
    assert stack.record(body["imageId"])["fileType"]["S"] == "image/jpeg"


def test_the_size_limit_comes_from_the_function_environment(stack: Stack) -> None:
    stack.env["MAX_UPLOAD_BYTES"] = "1000"
    answer = call_upload(stack, {"fileName": "a.png", "fileType": "image/png", "fileSize": 1001})
    assert answer["statusCode"] == 400
    assert answer_json(answer) == {"error": "File size exceeds the limit (1000 bytes)", "field": "fileSize"}


def test_a_declared_size_over_the_limit_is_400_as_the_original_api_answered(stack: Stack) -> None:
    answer = call_upload(stack, {"fileName": "a.jpg", "fileType": "image/jpeg", "fileSize": 6 * 1024 * 1024})
    assert answer["statusCode"] == 400
    assert "exceeds the limit (5 MiB)" in answer_json(answer)["error"]
    assert stack.dynamodb.scan(TableName="imgup-test-images")["Count"] == 0


# --- the whole flow ----------------------------------------------------------------------


def test_upload_put_complete_list_get_delete(stack: Stack) -> None:
    data = SAMPLES["image/webp"]
    started = start_upload(stack, data, file_type="image/webp", name="w.webp", sha256=sha256_hex(data))
    image_id = started["imageId"]
    key = key_of(stack, image_id)
    stack.put(key, data, "image/webp")

    done = call_complete(stack, image_id)
    assert done["statusCode"] == 200
    ready = answer_json(done)
    assert ready["status"] == "ready"
    assert ready["sha256"] == sha256_hex(data)

    assert listed_ids(stack) == [image_id]
    got = answer_json(call_get(stack, image_id))
    assert ORIGINAL_IMAGE_FIELDS <= set(got)
    assert (got["fileType"], got["fileSize"], got["sha256"]) == ("image/webp", len(data), sha256_hex(data))

    deleted = call_delete(stack, image_id)
    assert deleted["statusCode"] == 200
    assert answer_json(deleted)["imageId"] == image_id
    assert stack.record(image_id) is None
    assert stack.versions() == []
    assert call_get(stack, image_id)["statusCode"] == 404
    assert call_delete(stack, image_id)["statusCode"] == 404
    assert listed_ids(stack) == []


@pytest.mark.parametrize("file_type", sorted(SAMPLES))
def test_each_of_the_four_formats_completes(stack: Stack, file_type: str) -> None:
    image_id = upload_ready(stack, SAMPLES[file_type], file_type=file_type)
    assert answer_json(call_get(stack, image_id))["fileType"] == file_type


@pytest.mark.parametrize(
    ("file_type", "data"),
    [
        ("image/jpeg", jpeg_bytes(300, width=640, height=480)),
        ("image/webp", webp_bytes(30, width=640, height=480)),
    ],
)
def test_width_and_height_are_recorded_and_shown_by_complete_get_and_list(
    stack: Stack, file_type: str, data: bytes
) -> None:
    started = start_upload(stack, data, file_type=file_type)
    stack.put(key_of(stack, started["imageId"]), data, file_type)
    done = answer_json(call_complete(stack, started["imageId"]))
    got = answer_json(call_get(stack, started["imageId"]))
    (listed,) = answer_json(call_list(stack))["images"]
    for image in (done, got, listed):
        assert (image["width"], image["height"]) == (640, 480)
    record = stack.record(started["imageId"])
    assert (record["width"], record["height"]) == ({"N": "640"}, {"N": "480"})


def test_a_six_byte_gif89a_is_not_an_image(stack: Stack) -> None:
    started = start_upload(stack, b"GIF89a", file_type="image/gif", name="x.gif")
    stack.put(key_of(stack, started["imageId"]), b"GIF89a", "image/gif")
    answer = call_complete(stack, started["imageId"])
    assert answer["statusCode"] == 422
    assert answer_json(answer)["reason"] == (
        "Not an image: the file ends inside its GIF header (6 bytes) (declared GIF)"
    )
    assert stack.objects() == []


def test_completing_twice_returns_the_same_ready_image(stack: Stack) -> None:
    image_id = upload_ready(stack, SAMPLES["image/png"])
    first = answer_json(call_get(stack, image_id))
    again = call_complete(stack, image_id)
    assert again["statusCode"] == 200
    assert answer_json(again)["uploadedAt"] == first["uploadedAt"]
    assert listed_ids(stack) == [image_id]


def test_the_event_after_complete_changes_nothing(stack: Stack) -> None:
    image_id = upload_ready(stack, SAMPLES["image/png"])
    before = stack.record(image_id)
    result = handlers.complete(s3_event(key_of(stack, image_id)), None, stack.env)
    assert result["results"][0]["outcome"] == "ready"
    assert stack.record(image_id) == before


def test_complete_before_the_object_arrives_is_409_and_leaves_the_record_pending(stack: Stack) -> None:
    started = start_upload(stack, SAMPLES["image/png"])
    answer = call_complete(stack, started["imageId"])
    assert answer["statusCode"] == 409
    assert "not been uploaded" in answer_json(answer)["error"]
    assert stack.record(started["imageId"])["status"]["S"] == "pending"
    stack.put(key_of(stack, started["imageId"]), SAMPLES["image/png"])
    assert call_complete(stack, started["imageId"])["statusCode"] == 200


def test_pending_uploads_are_never_listed_nor_shown(stack: Stack) -> None:
    started = start_upload(stack, SAMPLES["image/png"])
    stack.put(key_of(stack, started["imageId"]), SAMPLES["image/png"])  # arrived, not completed
    assert listed_ids(stack) == []
    assert call_get(stack, started["imageId"])["statusCode"] == 404


# --- lies --------------------------------------------------------------------------------

LIES = {
    "oversized body": (dict(file_type="image/png"), PNG + b"\x00" * 500, 413, "Too large"),
    "smaller body": (dict(file_type="image/png"), PNG[:-10], 422, "Size mismatch"),
    "text posing as png": (dict(file_type="image/png"), b"x" * len(PNG), 422, "Not an image"),
    "jpeg declared as png": (
        dict(file_type="image/png"),
        SAMPLES["image/jpeg"] + b"\x00" * (len(PNG) - len(SAMPLES["image/jpeg"])),
        422,
        "Type mismatch",
    ),
    "wrong checksum": (dict(file_type="image/png", sha256="0" * 64), PNG, 422, "Checksum mismatch"),
    "png of zero width": (
        dict(file_type="image/png"),
        PNG[:16] + b"\x00" * 4 + PNG[20:],
        422,
        "Not an image",
    ),
    "gif magic then garbage": (
        dict(file_type="image/gif"),
        b"GIF89a" + b"\x00" * (len(PNG) - 6),
        422,
        "Not an image",
    ),
}


@pytest.mark.parametrize("lie", sorted(LIES))
def test_a_lie_is_rejected_its_object_deleted_and_never_listed(stack: Stack, lie: str) -> None:
    extra, stored, status, category = LIES[lie]
    started = start_upload(stack, PNG, **extra)
    image_id = started["imageId"]
    stack.put(key_of(stack, image_id), stored)

    answer = call_complete(stack, image_id)
    body = answer_json(answer)
    assert answer["statusCode"] == status
    assert body["status"] == "rejected"
    assert body["reason"].startswith(category)
    assert category in body["error"]

    record = stack.record(image_id)
    assert record["status"]["S"] == "rejected"
    assert record["reason"]["S"].startswith(category)
    assert "purgeAt" in record and "galleryPk" not in record
    assert stack.objects() == []
    assert listed_ids(stack) == []
    assert call_get(stack, image_id)["statusCode"] == 404
    assert call_complete(stack, image_id)["statusCode"] == status  # asking again: same answer


def test_an_object_over_the_limit_is_rejected_without_being_read(stack: Stack) -> None:
    stack.env["MAX_UPLOAD_BYTES"] = str(len(PNG))
    started = start_upload(stack, PNG)
    stack.put(key_of(stack, started["imageId"]), PNG + b"\x00" * 4096)
    answer = call_complete(stack, started["imageId"])
    assert answer["statusCode"] == 413
    assert "over the limit" in answer_json(answer)["error"]


# --- S3 events ---------------------------------------------------------------------------


def test_the_s3_event_completes_an_upload_that_nobody_completed(stack: Stack) -> None:
    started = start_upload(stack, PNG)
    key = key_of(stack, started["imageId"])
    stack.put(key, PNG)
    result = handlers.complete(s3_event(key), None, stack.env)
    assert result["results"] == [{"outcome": "ready", "imageId": started["imageId"]}]
    assert listed_ids(stack) == [started["imageId"]]


def test_the_s3_event_rejects_a_lie_without_raising(stack: Stack) -> None:
    started = start_upload(stack, PNG)
    key = key_of(stack, started["imageId"])
    stack.put(key, b"<html>not an image</html>".ljust(len(PNG)))
    result = handlers.complete(s3_event(key), None, stack.env)
    assert result["results"][0]["outcome"] == "rejected"
    assert stack.objects() == []
    assert stack.record(started["imageId"])["status"]["S"] == "rejected"
    answer = call_complete(stack, started["imageId"])
    assert answer["statusCode"] == 422


def test_an_object_under_images_without_a_record_is_deleted_whatever_its_encoded_key(stack: Stack) -> None:
    orphans = [
        "images/0b7e2c1e-8a4f-4d7a-9c55-2f0a5f1b3c4d/my photo+1.png",
        "images/not-an-id/x.png",
        "images/",
    ]
    for key in orphans:
        stack.put(key, PNG)
        handlers.complete(s3_event(key), None, stack.env)
    assert stack.versions() == []


def test_an_object_written_beside_a_records_own_key_is_deleted(stack: Stack) -> None:
    image_id = upload_ready(stack, PNG)
    intruder = f"images/{image_id}/other.png"
    stack.put(intruder, PNG)
    handlers.complete(s3_event(intruder), None, stack.env)
    assert stack.objects() == [key_of(stack, image_id)]
    assert listed_ids(stack) == [image_id]


# --- a completed image stays as it was verified (the bucket is versioned) -----------------


def image_url(stack: Stack, image_id: str) -> str:
    return answer_json(call_get(stack, image_id))["fileUrl"]


@pytest.mark.parametrize("event_names_version", [True, False], ids=["event-with-version", "event-without"])
def test_a_later_put_over_a_completed_image_is_removed_and_the_image_serves_what_was_verified(
    stack: Stack, event_names_version: bool
) -> None:
    # The original client: no sha256, PUT with Content-Type only, completed by the S3 event.
    started = start_upload(stack, PNG)
    image_id, key = started["imageId"], key_of(stack, started["imageId"])
    first = stack.put(key, PNG)
    handlers.complete(s3_event(key, version_id=first), None, stack.env)
    assert stack.record(image_id)["versionId"] == {"S": first}
    assert f"versionId={first}" in image_url(stack, image_id)

    second = stack.put(key, OTHER_PNG)  # the same upload URL, still valid
    event = s3_event(key, version_id=second if event_names_version else None)
    result = handlers.complete(event, None, stack.env)["results"][0]

    assert result == {"outcome": "ready", "imageId": image_id, "removedVersion": second}
    assert stack.versions() == [(key, first)]
    assert stack.s3.get_object(Bucket=BUCKET, Key=key)["Body"].read() == PNG
    assert stack.fetch(image_url(stack, image_id)) == PNG
    assert listed_ids(stack) == [image_id]
    got = answer_json(call_get(stack, image_id))
    assert (got["fileSize"], got["sha256"]) == (len(PNG), sha256_hex(PNG))


def test_the_fileurl_names_the_verified_version_even_before_a_later_put_is_removed(stack: Stack) -> None:
    image_id = upload_ready(stack, PNG)
    stack.put(key_of(stack, image_id), OTHER_PNG)  # its event has not run yet
    assert stack.fetch(image_url(stack, image_id)) == PNG


def test_the_event_of_the_verified_version_itself_changes_nothing(stack: Stack) -> None:
    started = start_upload(stack, PNG)
    key = key_of(stack, started["imageId"])
    version = stack.put(key, PNG)
    assert call_complete(stack, started["imageId"])["statusCode"] == 200
    before = stack.record(started["imageId"])
    result = handlers.complete(s3_event(key, version_id=version), None, stack.env)["results"][0]
    assert result == {"outcome": "ready", "imageId": started["imageId"]}
    assert stack.record(started["imageId"]) == before
    assert stack.versions() == [(key, version)]


def test_a_late_event_of_an_older_version_removes_it_and_keeps_the_one_verified(stack: Stack) -> None:
    started = start_upload(stack, PNG)
    key = key_of(stack, started["imageId"])
    older = stack.put(key, OTHER_PNG)
    newer = stack.put(key, PNG)
    assert call_complete(stack, started["imageId"])["statusCode"] == 200  # checks the current one
    assert stack.record(started["imageId"])["versionId"] == {"S": newer}
    result = handlers.complete(s3_event(key, version_id=older), None, stack.env)["results"][0]
    assert result["removedVersion"] == older
    assert stack.versions() == [(key, newer)]


def test_a_rejection_deletes_only_the_rejected_version_and_a_later_write_is_removed_too(stack: Stack) -> None:
    started = start_upload(stack, PNG)
    image_id, key = started["imageId"], key_of(stack, started["imageId"])
    honest = stack.put(key, PNG)
    lie = stack.put(key, b"z" * len(PNG))
    result = handlers.complete(s3_event(key, version_id=lie), None, stack.env)["results"][0]
    assert result["outcome"] == "rejected"
    assert stack.versions() == [(key, honest)]
    # The honest version's event comes late: the upload is rejected, its object goes too.
    result = handlers.complete(s3_event(key, version_id=honest), None, stack.env)["results"][0]
    assert result == {
        "outcome": "rejected",
        "imageId": image_id,
        "reason": result["reason"],
        "removedVersion": honest,
    }
    assert stack.versions() == []
    assert call_complete(stack, image_id)["statusCode"] == 422


def test_deleting_an_image_deletes_every_version_so_its_links_stop_working(stack: Stack) -> None:
    image_id = upload_ready(stack, PNG)
    key = key_of(stack, image_id)
    url = image_url(stack, image_id)
    stack.put(key, OTHER_PNG)  # a later version, not yet removed by its event
    stack.put(f"images/{image_id}/beside.png", PNG)
    assert call_delete(stack, image_id)["statusCode"] == 200
    assert stack.versions() == []
    with pytest.raises(Exception, match=r"40[34] Client Error"):  # S3 says 403 without ListBucket
        stack.fetch(url)


def test_a_write_after_the_image_was_deleted_is_removed_by_its_event(stack: Stack) -> None:
    image_id = upload_ready(stack, PNG)
    key = key_of(stack, image_id)
    assert call_delete(stack, image_id)["statusCode"] == 200
    late = stack.put(key, PNG)  # the upload URL still lives
    result = handlers.complete(s3_event(key, version_id=late), None, stack.env)["results"][0]
    assert result == {"outcome": "deleted_orphan", "imageId": image_id}
    assert stack.versions() == []


def test_without_versioning_a_lie_written_over_a_ready_image_takes_it_out_of_the_gallery(
    unversioned_stack: Stack,
) -> None:
    stack = unversioned_stack
    image_id = upload_ready(stack, PNG)
    assert "versionId" not in stack.record(image_id)
    key = key_of(stack, image_id)
    stack.put(key, b"y" * len(PNG))  # same length, still within a live presigned URL
    result = handlers.complete(s3_event(key), None, stack.env)
    assert result["results"][0]["outcome"] == "rejected"
    assert listed_ids(stack) == []
    assert stack.objects() == []


def test_without_versioning_the_same_bytes_written_again_change_nothing(unversioned_stack: Stack) -> None:
    stack = unversioned_stack
    image_id = upload_ready(stack, PNG)
    stack.put(key_of(stack, image_id), PNG)
    assert (
        handlers.complete(s3_event(key_of(stack, image_id)), None, stack.env)["results"][0]["outcome"]
        == "ready"
    )
    assert listed_ids(stack) == [image_id]


def test_s3_events_outside_images_or_of_other_kinds_are_ignored(stack: Stack) -> None:
    stack.put("elsewhere/a.png", b"anything")
    assert handlers.complete(s3_event("elsewhere/a.png"), None, stack.env)["results"] == [
        {"outcome": "ignored"}
    ]
    removed = s3_event("images/x/a.png", name="ObjectRemoved:Delete")
    assert handlers.complete(removed, None, stack.env)["results"] == [{"outcome": "ignored"}]
    other_bucket = s3_event("images/x/a.png", bucket="someone-else")
    assert handlers.complete(other_bucket, None, stack.env)["results"][0]["outcome"] == "ignored"
    assert (
        handlers.complete({"Records": [5, {"s3": None}, {}]}, None, stack.env)["results"]
        == [{"outcome": "ignored"}] * 3
    )
    assert stack.objects() == ["elsewhere/a.png"]


# --- listing -----------------------------------------------------------------------------


def test_listing_pages_newest_first_with_a_cursor(stack: Stack, clock: Clock) -> None:
    made = [upload_ready(stack, PNG, name=f"{n}.png") for n in range(5)]
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        query = {"limit": "2"} if cursor is None else {"limit": "2", "cursor": cursor}
        page = answer_json(call_list(stack, **query))
        assert page["count"] == len(page["images"]) <= 2
        seen += [image["imageId"] for image in page["images"]]
        pages += 1
        cursor = page["nextCursor"]
        if cursor is None:
            break
    assert pages == 3
    assert seen == list(reversed(made))
    stamps = [answer_json(call_get(stack, i))["uploadedAt"] for i in seen]
    assert stamps == sorted(stamps, reverse=True)


def test_a_full_last_page_says_that_it_is_the_last(stack: Stack, clock: Clock) -> None:
    for n in range(2):
        upload_ready(stack, PNG, name=f"{n}.png")
    assert answer_json(call_list(stack, limit="2"))["nextCursor"] is None


def test_an_empty_gallery_lists_nothing(stack: Stack) -> None:
    assert answer_json(call_list(stack)) == {
        "images": [],
        "count": 0,
        "nextCursor": None,
        "order": "newest",
        "filter": {},
    }


# --- hostile requests --------------------------------------------------------------------

UNKNOWN_ID = "0b7e2c1e-8a4f-4d7a-9c55-2f0a5f1b3c4d"
GOOD = {"fileName": "a.png", "fileType": "image/png", "fileSize": 100}


def upload_raw(text: str | None, **kwargs: Any) -> tuple:
    return (handlers.upload, api_event("POST", "/upload", raw_body=text, **kwargs))


def with_id(handler: Any, method: str, resource: str, image_id: str) -> tuple:
    return (handler, api_event(method, resource, path_params={"imageId": image_id}))


def listing(**query: str) -> tuple:
    return (handlers.images, api_event("GET", "/images", query=query))


HOSTILE = {
    "malformed json": upload_raw('{"fileName": "a.png",'),
    "not json": upload_raw("fileName=a.png&fileType=image/png"),
    "json array": upload_raw("[1, 2, 3]"),
    "json string": upload_raw('"a.png"'),
    "json null": upload_raw("null"),
    "empty body": upload_raw(""),
    "no body": upload_raw(None),
    "nan size": upload_raw('{"fileName": "a.png", "fileType": "image/png", "fileSize": NaN}'),
    "infinite size": upload_raw('{"fileName": "a.png", "fileType": "image/png", "fileSize": Infinity}'),
    "deep nesting": upload_raw("[" * 5000 + "]" * 5000),
    "huge number": upload_raw(
        '{"fileName": "a.png", "fileType": "image/png", "fileSize": ' + "9" * 5000 + "}"
    ),
    "oversized body": upload_raw(json.dumps({**GOOD, "pad": "x" * 17000})),
    "oversized base64 body": upload_raw(json.dumps({**GOOD, "pad": "x" * 17000}), base64_body=True),
    "bad base64": (
        handlers.upload,
        {**api_event("POST", "/upload", raw_body="%%%"), "isBase64Encoded": True},
    ),
    "latin-1 body": (
        handlers.upload,
        {
            **api_event("POST", "/upload"),
            "body": base64.b64encode(b'{"fileName": "\xe9.png"}').decode(),
            "isBase64Encoded": True,
        },
    ),
    "lone surrogate in name": upload_raw(
        '{"fileName": "\\ud800.png", "fileType": "image/png", "fileSize": 1}'
    ),
    "missing fields": upload_raw("{}"),
    "missing size": upload_raw('{"fileName": "a.png", "fileType": "image/png"}'),
    "boolean size": upload_raw(json.dumps({**GOOD, "fileSize": True})),
    "string size": upload_raw(json.dumps({**GOOD, "fileSize": "100"})),
    "zero size": upload_raw(json.dumps({**GOOD, "fileSize": 0})),
    "negative size": upload_raw(json.dumps({**GOOD, "fileSize": -1})),
    "fractional size": upload_raw(json.dumps({**GOOD, "fileSize": 10.5})),
    "size over the limit": upload_raw(json.dumps({**GOOD, "fileSize": 5 * 1024 * 1024 + 1})),
    "huge size": upload_raw(json.dumps({**GOOD, "fileSize": 10**40})),
    "empty name": upload_raw(json.dumps({**GOOD, "fileName": ""})),
    "blank name": upload_raw(json.dumps({**GOOD, "fileName": "   "})),
    "long name": upload_raw(json.dumps({**GOOD, "fileName": "a" * 300 + ".png"})),
    "control characters": upload_raw(json.dumps({**GOOD, "fileName": "a\r\nb.png"})),
    "path segments": upload_raw(json.dumps({**GOOD, "fileName": "../../etc/passwd"})),
    "windows path": upload_raw(json.dumps({**GOOD, "fileName": "..\\..\\boot.ini"})),
    "name is a number": upload_raw(json.dumps({**GOOD, "fileName": 7})),
    "svg": upload_raw(json.dumps({**GOOD, "fileType": "image/svg+xml"})),
    "html": upload_raw(json.dumps({**GOOD, "fileType": "text/html"})),
    "type is a list": upload_raw(json.dumps({**GOOD, "fileType": ["image/png"]})),
    "short checksum": upload_raw(json.dumps({**GOOD, "sha256": "abc"})),
    "checksum not hex": upload_raw(json.dumps({**GOOD, "sha256": "z" * 64})),
    "checksum is a number": upload_raw(json.dumps({**GOOD, "sha256": 5})),
    "get bad id": with_id(handlers.images, "GET", "/images/{imageId}", "../../etc"),
    "get sql-ish id": with_id(handlers.images, "GET", "/images/{imageId}", "' OR 1=1 --"),
    "get long id": with_id(handlers.images, "GET", "/images/{imageId}", "a" * 5000),
    "get unknown id": with_id(handlers.images, "GET", "/images/{imageId}", UNKNOWN_ID),
    "complete bad id": with_id(handlers.complete, "POST", "/images/{imageId}/complete", "x"),
    "complete unknown id": with_id(handlers.complete, "POST", "/images/{imageId}/complete", UNKNOWN_ID),
    "delete bad id": with_id(handlers.delete, "DELETE", "/images/{imageId}", "*"),
    "delete unknown id": with_id(handlers.delete, "DELETE", "/images/{imageId}", UNKNOWN_ID),
    "garbled cursor": listing(cursor="!!!not-a-cursor"),
    "forged cursor": listing(
        cursor=base64.urlsafe_b64encode(json.dumps({"imageId": {"S": "x"}}).encode()).decode().rstrip("=")
    ),
    "cursor with injected key": listing(
        cursor=base64.urlsafe_b64encode(
            json.dumps(
                {"galleryPk": "pending", "imageId": UNKNOWN_ID, "uploadedAt": "2026-11-25T12:00:00.000000Z"}
            ).encode()
        )
        .decode()
        .rstrip("=")
    ),
    "long cursor": listing(cursor="A" * 10000),
    "zero limit": listing(limit="0"),
    "negative limit": listing(limit="-5"),
    "huge limit": listing(limit="1" * 400),
    "word limit": listing(limit="all"),
    "query string not a mapping": (
        handlers.images,
        {**api_event("GET", "/images"), "queryStringParameters": ["x"]},
    ),
    "wrong method": (handlers.images, api_event("PUT", "/images")),
    "unknown resource": (handlers.images, {**api_event("GET", "/admin"), "resource": "/admin"}),
    "route of another function": (handlers.upload, api_event("GET", "/images")),
    "no method": (handlers.upload, {"path": "/upload"}),
    "event is a list": (handlers.upload, []),
    "event is a string": (handlers.images, "GET /images"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_requests_get_a_4xx_with_a_json_error(stack: Stack, case: str) -> None:
    handler, event = HOSTILE[case]
    answer = handler(event, None, stack.env)
    assert 400 <= answer["statusCode"] < 500, (case, answer)
    body = answer_json(answer)
    assert isinstance(body["error"], str) and body["error"]
    assert "Traceback" not in answer["body"]
    assert stack.objects() == []
    assert stack.dynamodb.scan(TableName="imgup-test-images")["Count"] == 0


def test_an_oversized_body_is_a_413(stack: Stack) -> None:
    handler, event = HOSTILE["oversized body"]
    assert handler(event, None, stack.env)["statusCode"] == 413


def test_a_wrong_method_is_a_405_that_says_what_is_allowed(stack: Stack) -> None:
    answer = handlers.images(
        api_event("PUT", "/images/{imageId}", path_params={"imageId": UNKNOWN_ID}), None, stack.env
    )
    assert answer["statusCode"] == 405
    assert answer["headers"]["Allow"] == "GET"


def test_routes_are_found_from_the_path_when_the_event_has_no_resource(stack: Stack) -> None:
    image_id = upload_ready(stack, PNG)
    event = {"httpMethod": "GET", "path": f"/v1/images/{image_id}", "headers": None}
    assert answer_json(handlers.images(event, None, stack.env))["imageId"] == image_id
    event = {"httpMethod": "POST", "path": f"/images/{image_id}/complete"}
    assert handlers.complete(event, None, stack.env)["statusCode"] == 200


def test_cors_preflight_is_answered_with_the_configured_origin(stack: Stack) -> None:
    stack.env["ALLOWED_ORIGIN"] = "https://gallery.example"
    answer = handlers.upload(api_event("OPTIONS", "/upload"), None, stack.env)
    assert answer["statusCode"] == 204
    assert answer["headers"]["Access-Control-Allow-Origin"] == "https://gallery.example"
    assert "x-api-key" in answer["headers"]["Access-Control-Allow-Headers"].lower()
    refused = handlers.upload(api_event("POST", "/upload", body={}), None, stack.env)
    assert refused["headers"]["Access-Control-Allow-Origin"] == "https://gallery.example"


# --- faults and logs ---------------------------------------------------------------------


def log_lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    return [json.loads(record.getMessage()) for record in caplog.records if record.name.startswith("imgup")]


def test_a_500_says_only_internal_server_error_and_logs_no_secret(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    stack.env["TABLE_NAME"] = "no-such-table"
    event = api_event("POST", "/upload", body={**GOOD, "fileName": "marker-q7z.png"})
    answer = handlers.upload(event, None, stack.env)

    assert answer["statusCode"] == 500
    request_id = event["requestContext"]["requestId"]
    assert json.loads(answer["body"]) == {"error": "Internal server error", "requestId": request_id}
    assert answer["headers"]["Access-Control-Allow-Origin"] == "*"

    lines = log_lines(caplog)
    errors = [line for line in lines if line["event"] == "error"]
    assert errors and errors[0]["requestId"] == request_id
    assert errors[0]["errorType"] == "ResourceNotFoundException"
    text = caplog.text
    assert API_KEY not in text
    assert "marker-q7z" not in text
    assert json.dumps(event) not in text
    assert "x-api-key" not in text.lower()


def test_a_missing_setting_is_a_500_with_the_reason_in_the_log(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    del stack.env["BUCKET_NAME"]
    answer = call_list(stack)
    assert answer["statusCode"] == 500
    assert json.loads(answer["body"])["error"] == "Internal server error"
    assert any("BUCKET_NAME is not set" in line.get("error", "") for line in log_lines(caplog))


def test_every_request_logs_one_json_line_with_its_id_and_validated_fields(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    event = api_event("POST", "/upload", body={**GOOD, "fileName": "marker-k2p.png"})
    handlers.upload(event, None, stack.env)
    (line,) = log_lines(caplog)
    assert line["requestId"] == event["requestContext"]["requestId"]
    assert (line["status"], line["fileType"], line["fileSize"]) == (200, "image/png", 100)
    assert rules.is_image_id(line["imageId"])
    assert API_KEY not in caplog.text and "marker-k2p" not in caplog.text


def test_an_unexpected_failure_in_an_s3_event_is_raised_after_every_record_is_tried(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    orphan = "images/not-an-id/a.png"
    stack.put(orphan, PNG)
    stack.env["TABLE_NAME"] = "no-such-table"
    event = s3_event(f"images/{UNKNOWN_ID}/a.png")
    event["Records"] += s3_event(orphan)["Records"]
    with pytest.raises(RuntimeError):
        handlers.complete(event, None, stack.env)
    assert stack.objects() == []  # the second record was still handled


# --- settings and clients ----------------------------------------------------------------


def test_clients_use_the_endpoint_and_region_of_the_environ_mapping() -> None:
    environ = {
        "TABLE_NAME": "t",
        "BUCKET_NAME": "b",
        "AWS_REGION": "eu-west-3",
        "AWS_ENDPOINT_URL": "http://127.0.0.1:4566",
        "AWS_ACCESS_KEY_ID": "local",
        "AWS_SECRET_ACCESS_KEY": "local",
    }
    settings = Settings.from_environ(environ)
    built = clients(settings.connection)
    assert built.s3.meta.endpoint_url == "http://127.0.0.1:4566"
    assert built.dynamodb.meta.endpoint_url == "http://127.0.0.1:4566"
    assert built.s3.meta.region_name == "eu-west-3"
    assert clients(Settings.from_environ(dict(environ)).connection) is built
    assert "local" not in repr(settings)


# --- races and arbitrary input -----------------------------------------------------------


@pytest.mark.parametrize("honest", [True, False], ids=["honest", "lie"])
def test_the_complete_call_racing_the_s3_event_agrees_on_one_outcome(stack: Stack, honest: bool) -> None:
    ready: list[str] = []
    for _ in range(5):  # a few rounds, so that the calls really overlap now and then
        image_id = start_upload(stack, PNG)["imageId"]
        key = key_of(stack, image_id)
        stack.put(key, PNG if honest else b"z" * len(PNG))

        with ThreadPoolExecutor(max_workers=4) as pool:
            calls = [pool.submit(call_complete, stack, image_id) for _ in range(2)]
            events = [pool.submit(handlers.complete, s3_event(key), None, stack.env) for _ in range(2)]
            statuses = {call.result()["statusCode"] for call in calls}
            outcomes = {event.result()["results"][0]["outcome"] for event in events}

        if honest:
            assert (statuses, outcomes) == ({200}, {"ready"})
            ready.insert(0, image_id)
        else:
            assert (statuses, outcomes) == ({422}, {"rejected"})
            assert stack.record(image_id)["status"]["S"] == "rejected"
    assert listed_ids(stack) == ready
    assert len(stack.objects()) == len(ready)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)
upload_bodies = st.fixed_dictionaries(
    {},
    optional={
        "fileName": json_values | st.text(max_size=300),
        "fileType": json_values
        | st.sampled_from(sorted(rules.ALLOWED_TYPES) + ["image/jpg", "image/svg+xml"]),
        "fileSize": json_values | st.integers(min_value=-10, max_value=6 * 1024 * 1024),
        "sha256": json_values | st.binary(min_size=32, max_size=32).map(bytes.hex),
    },
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=json_values | upload_bodies)
def test_upload_answers_any_json_body_with_200_or_a_4xx_never_a_5xx(stack: Stack, body: Any) -> None:
    answer = call_upload(stack, body)
    assert answer["statusCode"] == 200 or 400 <= answer["statusCode"] < 500, answer
    assert isinstance(answer_json(answer), dict)
