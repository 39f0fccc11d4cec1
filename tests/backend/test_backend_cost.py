"""Verify once, and cheaply: whichever of ``complete`` and the S3 event comes second finds the
work done with one consistent GetItem and no S3 call. An object of up to a MiB is checked from
one GET of all of it; of a larger one, a declared SHA-256 that S3 stored is trusted, so only
the first bytes are read; without one, the object is read and hashed."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from backend_support import (
    Stack,
    answer_json,
    call_complete,
    counted_calls,
    key_of,
    operations,
    png_bytes,
    put_with_checksum,
    s3_event,
    sha256_hex,
    start_upload,
)

from imgup.backend import completion, handlers, rules
from imgup.backend.settings import Settings, clients
from imgup.backend.storage import ImageStore

# larger than what is read whole, and than what the header check reads
BIG = png_bytes(padding=completion.WHOLE_READ_BYTES + 300 * 1024)
SMALL = png_bytes(padding=20 * 1024)


@pytest.mark.parametrize("declared", [True, False], ids=["sha256-declared", "nothing-declared"])
def test_a_small_object_is_checked_from_one_get_of_all_of_it(stack: Stack, declared: bool) -> None:
    started = start_upload(stack, SMALL, sha256=sha256_hex(SMALL) if declared else None)
    key = key_of(stack, started["imageId"])
    version = put_with_checksum(stack, key, SMALL)

    with counted_calls(stack.env) as calls:
        done = call_complete(stack, started["imageId"])

    assert done["statusCode"] == 200
    answer = answer_json(done)
    assert answer["sha256"] == sha256_hex(SMALL)
    assert (answer["width"], answer["height"]) == (1, 1)
    assert operations(calls) == ["GetItem", "GetObject", "PutItem"]
    assert "range" not in calls[1].headers
    assert stack.record(started["imageId"])["versionId"] == {"S": version}


def test_a_small_object_with_other_bytes_than_declared_is_a_checksum_mismatch(stack: Stack) -> None:
    started = start_upload(stack, SMALL, sha256=sha256_hex(SMALL))
    other = SMALL[:-1] + bytes([SMALL[-1] ^ 1])
    stack.put(key_of(stack, started["imageId"]), other)
    answer = call_complete(stack, started["imageId"])
    assert answer["statusCode"] == 422
    assert answer_json(answer)["reason"].startswith("Checksum mismatch")
    assert stack.versions() == []


def test_a_small_object_larger_than_declared_is_too_large_and_says_its_real_size(stack: Stack) -> None:
    started = start_upload(stack, SMALL, sha256=sha256_hex(SMALL))
    stack.put(key_of(stack, started["imageId"]), SMALL + b"\0" * 5000)
    answer = call_complete(stack, started["imageId"])
    assert answer["statusCode"] == 413
    assert answer_json(answer)["reason"] == (
        f"Too large: the uploaded file has {len(SMALL) + 5000} bytes, but {len(SMALL)} were declared"
    )
    assert stack.versions() == []


def test_a_declared_checksum_that_s3_stored_is_trusted_and_only_the_header_is_read(stack: Stack) -> None:
    started = start_upload(stack, BIG, sha256=sha256_hex(BIG))
    key = key_of(stack, started["imageId"])
    put_with_checksum(stack, key, BIG)

    with counted_calls(stack.env) as calls:
        done = call_complete(stack, started["imageId"])

    assert done["statusCode"] == 200
    assert answer_json(done)["sha256"] == sha256_hex(BIG)
    assert operations(calls) == ["GetItem", "HeadObject", "GetObject", "PutItem"]
    head, get = calls[1], calls[2]
    assert head.headers["x-amz-checksum-mode"] == "ENABLED"
    assert get.headers["range"] == f"bytes=0-{rules.PROBE_BYTES - 1}"


def test_a_stored_checksum_other_than_the_declared_one_is_a_checksum_mismatch(stack: Stack) -> None:
    started = start_upload(stack, BIG, sha256=sha256_hex(BIG))
    key = key_of(stack, started["imageId"])
    put_with_checksum(stack, key, BIG, stored=b"other bytes")
    answer = call_complete(stack, started["imageId"])
    assert answer["statusCode"] == 422
    assert answer_json(answer)["reason"].startswith("Checksum mismatch")
    assert stack.versions() == []


def test_a_header_that_does_not_parse_is_refused_on_the_cheap_path_too(stack: Stack) -> None:
    lie = b"GIF89a" + b"\x00" * 100
    started = start_upload(stack, lie, file_type="image/gif", name="a.gif", sha256=sha256_hex(lie))
    put_with_checksum(stack, key_of(stack, started["imageId"]), lie)
    answer = call_complete(stack, started["imageId"])
    assert answer["statusCode"] == 422
    assert answer_json(answer)["reason"].startswith("Not an image")


def test_without_a_declared_checksum_the_object_is_read_and_hashed_whole(stack: Stack) -> None:
    started = start_upload(stack, BIG)
    stack.put(key_of(stack, started["imageId"]), BIG)
    with counted_calls(stack.env) as calls:
        done = call_complete(stack, started["imageId"])
    assert answer_json(done)["sha256"] == sha256_hex(BIG)
    assert operations(calls) == ["GetItem", "HeadObject", "GetObject", "PutItem"]
    assert "range" not in calls[2].headers


def test_a_declared_checksum_that_s3_did_not_store_is_checked_by_reading_the_object(stack: Stack) -> None:
    started = start_upload(stack, BIG, sha256=sha256_hex(BIG))
    stack.put(key_of(stack, started["imageId"]), BIG)  # no checksum stored with it
    with counted_calls(stack.env) as calls:
        assert call_complete(stack, started["imageId"])["statusCode"] == 200
    assert "range" not in calls[2].headers


def test_the_event_after_complete_costs_one_read_of_the_record_and_nothing_in_s3(stack: Stack) -> None:
    started = start_upload(stack, BIG, sha256=sha256_hex(BIG))
    key = key_of(stack, started["imageId"])
    version = put_with_checksum(stack, key, BIG)
    assert call_complete(stack, started["imageId"])["statusCode"] == 200

    with counted_calls(stack.env) as calls:
        result = handlers.complete(s3_event(key, version_id=version), None, stack.env)

    assert result["results"] == [{"outcome": "ready", "imageId": started["imageId"]}]
    assert [(c.service, c.operation) for c in calls] == [("dynamodb", "GetItem")]


def test_complete_after_the_event_costs_one_read_of_the_record_and_nothing_in_s3(stack: Stack) -> None:
    started = start_upload(stack, BIG, sha256=sha256_hex(BIG))
    key = key_of(stack, started["imageId"])
    version = put_with_checksum(stack, key, BIG)
    with counted_calls(stack.env) as first:
        handlers.complete(s3_event(key, version_id=version), None, stack.env)

    with counted_calls(stack.env) as calls:
        assert call_complete(stack, started["imageId"])["statusCode"] == 200

    assert operations(first) == ["GetItem", "HeadObject", "GetObject", "PutItem"]
    assert [(c.service, c.operation) for c in calls] == [("dynamodb", "GetItem")]


def test_the_read_of_the_record_is_consistent_so_the_second_sees_the_firsts_work(stack: Stack) -> None:
    started = start_upload(stack, BIG, sha256=sha256_hex(BIG))
    with counted_calls(stack.env) as calls:
        call_complete(stack, started["imageId"])
    assert calls[0].operation == "GetItem" and calls[0].body["ConsistentRead"] is True


def test_a_check_that_overlapped_the_other_learns_the_outcome_from_its_failed_write(stack: Stack) -> None:
    # complete and the event both read the record while it was pending, both checked the
    # object; the second to write finds it ready in the answer of its own conditional write.
    started = start_upload(stack, BIG, sha256=sha256_hex(BIG))
    key = key_of(stack, started["imageId"])
    version = put_with_checksum(stack, key, BIG)
    settings = Settings.from_environ(stack.env)
    built = clients(settings.connection)
    store = ImageStore(built.dynamodb, settings.table_name)
    stale = store.get(started["imageId"])
    assert call_complete(stack, started["imageId"])["statusCode"] == 200

    with counted_calls(stack.env) as calls:
        outcome = completion.complete(
            built.s3,
            store,
            bucket=settings.bucket_name,
            record=stale,
            max_bytes=settings.max_upload_bytes,
            now=datetime.now(timezone.utc),
            pending_ttl_seconds=60,
            written=completion.ObjectWritten(version),
        )

    assert (outcome.kind, outcome.record.version_id) == ("ready", version)
    assert operations(calls) == ["HeadObject", "GetObject", "PutItem"]
    assert calls[2].body["ReturnValuesOnConditionCheckFailure"] == "ALL_OLD"
