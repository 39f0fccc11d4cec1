"""The batch routes: ``POST /uploads`` presigns up to 100 files, ``POST /uploads/complete``
completes up to 100 uploads; an entry's refusal never fails the others. And what a whole
upload costs in S3 and DynamoDB operations per file."""

from __future__ import annotations

import json
from typing import Any

import pytest
from backend_support import (
    PNG,
    TABLE,
    Stack,
    answer_json,
    api_event,
    call_complete,
    counted_calls,
    key_of,
    operations,
    png_bytes,
    put_with_checksum,
    s3_event,
    sha256_hex,
    start_upload,
    upload_ready,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imgup.backend import handlers, rules, storage
from imgup.backend.storage import ImageRecord, ImageStore

GRANT_FIELDS = {"index", "imageId", "uploadUrl", "uploadHeaders", "fileUrl", "expiresAt", "expiresIn"}
UNKNOWN_ID = "0b7e2c1e-8a4f-4d7a-9c55-2f0a5f1b3c4d"


def call_uploads(stack: Stack, body: Any = None, raw: str | None = None) -> dict[str, Any]:
    return handlers.upload(api_event("POST", "/uploads", body=body, raw_body=raw), None, stack.env)


def call_complete_many(stack: Stack, body: Any = None, raw: str | None = None) -> dict[str, Any]:
    return handlers.complete(api_event("POST", "/uploads/complete", body=body, raw_body=raw), None, stack.env)


def entry(data: bytes, name: str = "a.png", **extra: Any) -> dict[str, Any]:
    return {"fileName": name, "fileType": "image/png", "fileSize": len(data), **extra}


def record_count(stack: Stack) -> int:
    return stack.dynamodb.scan(TableName=TABLE)["Count"]


# --- POST /uploads -----------------------------------------------------------------------


def test_uploads_presigns_each_file_in_order_and_a_refused_one_fails_no_other(stack: Stack) -> None:
    files = [
        entry(PNG, "one.png", sha256=sha256_hex(PNG)),
        {"fileName": "x.svg", "fileType": "image/svg+xml", "fileSize": 10},
        entry(PNG, "three.png"),
        "not an object",
        {"fileName": "big.png", "fileType": "image/png", "fileSize": 6 * 1024 * 1024},
    ]
    answer = call_uploads(stack, {"files": files})
    body = answer_json(answer)
    assert answer["statusCode"] == 200
    assert body["count"] == 5 and [e["index"] for e in body["uploads"]] == [0, 1, 2, 3, 4]
    one, svg, three, text, big = body["uploads"]
    for granted in (one, three):
        assert set(granted) == GRANT_FIELDS
        assert granted["expiresIn"] == 300
        assert stack.record(granted["imageId"])["status"] == {"S": "pending"}
    assert one["uploadHeaders"]["x-amz-checksum-sha256"]
    assert "x-amz-checksum-sha256" not in three["uploadHeaders"]
    assert svg == {
        "index": 1,
        "error": "Invalid file type. Only image files are allowed (jpeg, jpg, png, gif, webp)",
        "status": 400,
        "field": "fileType",
    }
    assert text == {"index": 3, "error": "Each entry of files must be a JSON object", "status": 400}
    assert (big["status"], big["field"]) == (400, "fileSize") and "exceeds the limit" in big["error"]
    assert record_count(stack) == 2


def test_a_granted_upload_of_a_batch_completes_like_a_single_one(stack: Stack) -> None:
    granted = answer_json(call_uploads(stack, {"files": [entry(PNG)]}))["uploads"][0]
    stack.put(key_of(stack, granted["imageId"]), PNG)
    assert call_complete(stack, granted["imageId"])["statusCode"] == 200


def test_uploads_writes_its_records_25_to_a_batch(stack: Stack) -> None:
    with counted_calls(stack.env) as calls:
        answer = call_uploads(stack, {"files": [entry(PNG, f"{n}.png") for n in range(rules.MAX_BATCH)]})
    assert answer["statusCode"] == 200
    assert operations(calls) == ["BatchWriteItem"] * 4
    assert [len(c.body["RequestItems"][TABLE]) for c in calls] == [25, 25, 25, 25]
    assert record_count(stack) == 100


def test_the_single_upload_answers_expires_in_too(stack: Stack) -> None:
    body = start_upload(stack, PNG)
    assert body["expiresIn"] == 300
    assert body["message"] == "Upload URL generated successfully"


def test_a_batch_the_table_keeps_refusing_is_a_503_to_retry(stack: Stack, monkeypatch) -> None:
    def busy(self: ImageStore, records: list[ImageRecord]) -> None:
        raise storage.Busy("throttled")

    monkeypatch.setattr(ImageStore, "create_pending_many", busy)
    answer = call_uploads(stack, {"files": [entry(PNG)]})
    assert answer["statusCode"] == 503
    assert answer["headers"]["Retry-After"] == "1"
    assert answer_json(answer)["error"]


# --- the batch writes and reads, against a table that leaves items unprocessed -------------


class Throttling:
    """A DynamoDB client whose batch calls leave everything unprocessed ``refusals`` times."""

    def __init__(self, refusals: int) -> None:
        self.refusals = refusals
        self.calls: list[dict[str, Any]] = []
        self.items: dict[str, dict[str, Any]] = {}

    def batch_write_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:  # noqa: N803
        self.calls.append(RequestItems)
        if len(self.calls) <= self.refusals:
            return {"UnprocessedItems": RequestItems}
        for request in RequestItems[TABLE]:
            item = request["PutRequest"]["Item"]
            self.items[item["imageId"]["S"]] = item
        return {"UnprocessedItems": {}}

    def batch_get_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:  # noqa: N803
        self.calls.append(RequestItems)
        if len(self.calls) <= self.refusals:
            return {"Responses": {TABLE: []}, "UnprocessedKeys": RequestItems}
        keys = [key["imageId"]["S"] for key in RequestItems[TABLE]["Keys"]]
        return {"Responses": {TABLE: [self.items[k] for k in keys if k in self.items]}}


def pending_records(count: int) -> list[ImageRecord]:
    return [
        ImageRecord(
            image_id=rules.new_image_id(),
            file_name="a.png",
            s3_key="images/x/a.png",
            file_type="image/png",
            file_size=1,
            status="pending",
            created_at="2026-11-25T12:00:00.000000Z",
            purge_at=1,
        )
        for _ in range(count)
    ]


def test_unprocessed_items_are_written_again_after_a_growing_pause() -> None:
    pauses: list[float] = []
    client = Throttling(refusals=2)
    records = pending_records(3)
    ImageStore(client, TABLE, sleep=pauses.append).create_pending_many(records)
    assert len(client.calls) == 3 and set(client.items) == {r.image_id for r in records}
    assert pauses == [storage.BATCH_BACKOFF_SECONDS, 2 * storage.BATCH_BACKOFF_SECONDS]


def test_items_left_unprocessed_after_every_attempt_are_busy_not_lost_silently() -> None:
    client = Throttling(refusals=100)
    with pytest.raises(storage.Busy):
        ImageStore(client, TABLE, sleep=lambda _: None).create_pending_many(pending_records(2))
    assert len(client.calls) == storage.BATCH_ATTEMPTS


def test_unprocessed_keys_are_read_again_and_reads_are_strongly_consistent() -> None:
    client = Throttling(refusals=0)
    records = pending_records(2)
    store = ImageStore(client, TABLE, sleep=lambda _: None)
    store.create_pending_many(records)
    client.refusals, client.calls = 1, []
    found = store.get_many([records[0].image_id, UNKNOWN_ID, records[1].image_id])
    assert set(found) == {records[0].image_id, records[1].image_id}
    assert len(client.calls) == 2
    assert all(call[TABLE]["ConsistentRead"] is True for call in client.calls)


# --- POST /uploads/complete ----------------------------------------------------------------


def test_complete_many_answers_each_id_in_order_with_the_single_routes_meaning(stack: Stack) -> None:
    stack.env["MAX_UPLOAD_BYTES"] = "2000"
    done = upload_ready(stack, PNG, name="done.png")
    arrived = start_upload(stack, PNG, name="arrived.png")["imageId"]
    stack.put(key_of(stack, arrived), PNG)
    waiting = start_upload(stack, PNG, name="waiting.png")["imageId"]
    lie = start_upload(stack, PNG, name="lie.png")["imageId"]
    stack.put(key_of(stack, lie), b"<html>".ljust(len(PNG)))
    big = start_upload(stack, PNG, name="big.png")["imageId"]
    stack.put(key_of(stack, big), png_bytes(2500))

    ids = [done, arrived, waiting, lie, UNKNOWN_ID, big]
    answer = call_complete_many(stack, {"imageIds": ids})
    body = answer_json(answer)

    assert answer["statusCode"] == 200 and body["count"] == 6
    assert [e["imageId"] for e in body["images"]] == ids
    got_done, got_arrived, got_waiting, got_lie, got_unknown, got_big = body["images"]
    for image in (got_done, got_arrived):
        assert image["status"] == "ready"
        assert {"imageId", "fileName", "fileUrl", "fileType", "fileSize", "uploadedAt", "sha256"} <= set(
            image
        )
        assert (image["width"], image["height"]) == (1, 1)
    assert got_waiting == {"imageId": waiting, "error": got_waiting["error"], "status": 409}
    assert "not been uploaded" in got_waiting["error"]
    assert (got_lie["status"], got_lie["reason"].split(":")[0]) == (422, "Not an image")
    assert got_lie["error"] == f"Upload rejected. {got_lie['reason']}"
    assert got_unknown == {"imageId": UNKNOWN_ID, "error": "Image not found", "status": 404}
    assert (got_big["status"], got_big["reason"].split(":")[0]) == (413, "Too large")
    assert stack.record(arrived)["status"] == {"S": "ready"}


def test_complete_many_costs_one_batch_read_when_the_events_did_the_work(stack: Stack) -> None:
    ids = []
    for n in range(5):
        image_id = start_upload(stack, PNG, name=f"{n}.png")["imageId"]
        key = key_of(stack, image_id)
        handlers.complete(s3_event(key, version_id=stack.put(key, PNG)), None, stack.env)
        ids.append(image_id)
    with counted_calls(stack.env) as calls:
        body = answer_json(call_complete_many(stack, {"imageIds": ids}))
    assert [image["status"] for image in body["images"]] == ["ready"] * 5
    assert operations(calls) == ["BatchGetItem"]
    assert calls[0].body["RequestItems"][TABLE]["ConsistentRead"] is True


# --- hostile requests ----------------------------------------------------------------------

HOSTILE_UPLOADS = {
    "no body": None,
    "malformed json": '{"files": [',
    "json array": "[]",
    "files missing": "{}",
    "files not a list": json.dumps({"files": {"fileName": "a.png"}}),
    "files a string": json.dumps({"files": "a.png"}),
    "no files": json.dumps({"files": []}),
    "101 files": json.dumps({"files": [{"fileName": "a.png", "fileType": "image/png", "fileSize": 1}] * 101}),
    "deep nesting": '{"files": ' + "[" * 5000 + "]" * 5000 + "}",
    "oversized body": json.dumps({"files": [{"fileName": "a" * 200 + ".png"}] * 2000}),
    "nan": '{"files": [{"fileName": "a.png", "fileType": "image/png", "fileSize": NaN}]}',
}
HOSTILE_COMPLETES = {
    "no body": None,
    "ids missing": "{}",
    "ids not a list": json.dumps({"imageIds": UNKNOWN_ID}),
    "no ids": json.dumps({"imageIds": []}),
    "101 ids": json.dumps({"imageIds": [rules.new_image_id() for _ in range(101)]}),
    "a repeated id": json.dumps({"imageIds": [UNKNOWN_ID, UNKNOWN_ID]}),
    "a path as an id": json.dumps({"imageIds": ["../../etc/passwd"]}),
    "a number as an id": json.dumps({"imageIds": [7]}),
    "an upper-case id": json.dumps({"imageIds": [UNKNOWN_ID.upper()]}),
    "oversized body": json.dumps({"imageIds": [UNKNOWN_ID] * 1000}),
}


@pytest.mark.parametrize("case", sorted(HOSTILE_UPLOADS))
def test_a_hostile_uploads_request_gets_a_4xx_json_error_and_writes_nothing(stack: Stack, case: str) -> None:
    answer = call_uploads(stack, raw=HOSTILE_UPLOADS[case])
    assert 400 <= answer["statusCode"] < 500, answer
    assert answer_json(answer)["error"]
    assert record_count(stack) == 0


@pytest.mark.parametrize("case", sorted(HOSTILE_COMPLETES))
def test_a_hostile_complete_many_request_gets_a_4xx_json_error(stack: Stack, case: str) -> None:
    image_id = upload_ready(stack, PNG)
    answer = call_complete_many(stack, raw=HOSTILE_COMPLETES[case])
    assert 400 <= answer["statusCode"] < 500, answer
    assert answer_json(answer)["error"]
    assert stack.record(image_id)["status"] == {"S": "ready"}


def test_the_whole_request_errors_name_the_rule(stack: Stack) -> None:
    assert answer_json(call_uploads(stack, {"files": []})) == {
        "error": "files must hold from 1 to 100 entries, not 0",
        "field": "files",
    }
    assert call_uploads(stack, raw=HOSTILE_UPLOADS["oversized body"])["statusCode"] == 413
    assert answer_json(call_complete_many(stack, raw=HOSTILE_COMPLETES["a repeated id"]))["error"] == (
        "imageIds must not repeat an id"
    )


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=10,
)
file_entries = json_values | st.fixed_dictionaries(
    {},
    optional={
        "fileName": json_values | st.text(max_size=50),
        "fileType": json_values | st.sampled_from(sorted(rules.ALLOWED_TYPES)),
        "fileSize": json_values | st.integers(min_value=-2, max_value=6 * 1024 * 1024),
        "sha256": json_values | st.binary(min_size=32, max_size=32).map(bytes.hex),
    },
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=json_values | st.fixed_dictionaries({"files": json_values | st.lists(file_entries, max_size=8)}))
def test_uploads_answers_any_body_with_one_entry_per_file_or_a_4xx(stack: Stack, body: Any) -> None:
    answer = call_uploads(stack, body)
    result = answer_json(answer)
    if answer["statusCode"] != 200:
        assert 400 <= answer["statusCode"] < 500 and result["error"]
        return
    files = body["files"]
    assert result["count"] == len(files) == len(result["uploads"])
    for index, item in enumerate(result["uploads"]):
        assert item["index"] == index
        assert set(item) == GRANT_FIELDS or (item["status"] == 400 and item["error"])


# --- what an upload costs --------------------------------------------------------------------


def upload_batch(stack: Stack, count: int, *, complete_first: bool) -> list[Any]:
    """The lead's client's flow for ``count`` files that declare their SHA-256: one POST
    /uploads, a PUT each (S3 stores the signed checksum), one POST /uploads/complete, and
    the bucket's events (which name the version written); every S3 and DynamoDB call counted."""
    files = [png_bytes(64 + n) for n in range(count)]
    with counted_calls(stack.env) as calls:
        granted = answer_json(
            call_uploads(
                stack, {"files": [entry(d, f"{n}.png", sha256=sha256_hex(d)) for n, d in enumerate(files)]}
            )
        )["uploads"]
        ids = [g["imageId"] for g in granted]
        events = []
        for data, image_id in zip(files, ids, strict=True):
            key = key_of(stack, image_id)
            events.append(s3_event(key, version_id=put_with_checksum(stack, key, data)))
        steps = [lambda: call_complete_many(stack, {"imageIds": ids})] + [
            lambda event=event: handlers.complete(event, None, stack.env) for event in events
        ]
        for step in steps if complete_first else steps[1:] + steps[:1]:
            step()
    # key_of and the test's own PUTs went through other clients: only the handlers' calls count.
    assert stack.dynamodb.scan(TableName=TABLE, Select="COUNT")["Count"] == count
    assert all(stack.record(i)["status"] == {"S": "ready"} for i in ids)
    return calls


@pytest.mark.parametrize("complete_first", [False, True], ids=["event-first", "complete-first"])
def test_an_uploaded_file_costs_at_most_four_operations_plus_a_share_of_the_batches(
    stack: Stack, complete_first: bool
) -> None:
    # Four: the Query of the SHA-256 index that looks for the same bytes in the gallery, then
    # the three of the check (GetItem, one GET of the whole small object, PutItem).
    count = 50
    calls = upload_batch(stack, count, complete_first=complete_first)
    batches = [c for c in calls if c.operation.startswith("Batch")]
    per_file = [c for c in calls if not c.operation.startswith("Batch")]
    assert operations(batches).count("BatchWriteItem") == 2 and operations(batches).count("BatchGetItem") == 1
    assert len(per_file) == 4 * count
    assert sorted(set(operations(per_file))) == ["GetItem", "GetObject", "PutItem", "Query"]
    lookups = [c for c in per_file if c.operation == "Query"]
    assert {c.body["IndexName"] for c in lookups} == {"ReadyBySha256"}
    reads = [c for c in per_file if c.operation == "GetObject"]
    assert not any(c.headers.get("range") for c in reads)
    assert len(reads) == count
