"""GET /images with filters, order, large pages and a count of what remains: served by the
ReadyByDate index (a Query, never a Scan), reading a bounded stretch of it per request."""

from __future__ import annotations

import fnmatch
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from backend_support import TABLE, Stack, answer_json, call_list, counted_calls, operations
from hypothesis import given
from hypothesis import strategies as st

from imgup.backend import rules, storage
from imgup.backend.storage import ImageRecord

START = datetime(2026, 1, 1, tzinfo=timezone.utc)
NAMES = ["tmp-1.png", "tmp-2.jpg", "holiday.png", "Tmp-3.png", "photo [1].gif", "a*b.webp", "x.png"]
TYPES = {"png": "image/png", "jpg": "image/jpeg", "gif": "image/gif", "webp": "image/webp"}


def put_ready(stack: Stack, count: int, names: list[str] | None = None) -> list[ImageRecord]:
    """``count`` ready records, one second apart from START, named in turn from ``names``."""
    names = names or NAMES
    records = []
    for n in range(count):
        name = names[n % len(names)]
        stamp = rules.format_timestamp(START + timedelta(seconds=n))
        image_id = str(uuid.UUID(int=n + 1, version=4))
        record = ImageRecord(
            image_id=image_id,
            file_name=name,
            s3_key=rules.object_key(image_id, name),
            file_type=TYPES[name.rsplit(".", 1)[1]],
            file_size=100 + n,
            status=storage.READY,
            created_at=stamp,
            uploaded_at=stamp,
            sha256=f"{n:064x}",
            width=1,
            height=1,
        )
        records.append(record)
    for start in range(0, len(records), 25):
        batch = [{"PutRequest": {"Item": r.to_item()}} for r in records[start : start + 25]]
        stack.dynamodb.batch_write_item(RequestItems={TABLE: batch})
    return records


def list_all(stack: Stack, **query: str) -> tuple[list[str], int]:
    """Every id a listing gives, following cursors; and the number of requests."""
    ids: list[str] = []
    cursor = None
    for requests in range(1, 1000):
        answer = answer_json(call_list(stack, **query, **({"cursor": cursor} if cursor else {})))
        ids += [image["imageId"] for image in answer["images"]]
        cursor = answer["nextCursor"]
        if cursor is None:
            return ids, requests
    raise AssertionError("the listing did not end")


def expected(
    records: list[ImageRecord], *, name: str | None = None, types=(), since=None, until=None, oldest=False
):
    kept = [
        r
        for r in records
        if (name is None or fnmatch.fnmatchcase(r.file_name, name))
        and (not types or r.file_type in types)
        and (since is None or r.uploaded_at >= since)
        and (until is None or r.uploaded_at < until)
    ]
    kept.sort(key=lambda r: r.uploaded_at or "", reverse=not oldest)
    return [r.image_id for r in kept]


# --- filters give exactly what a filter over everything would ---------------------------


@pytest.mark.parametrize(
    "query, where",
    [
        ({"name": "tmp*"}, {"name": "tmp*"}),
        ({"name": "*.png"}, {"name": "*.png"}),
        ({"name": "?mp-*"}, {"name": "?mp-*"}),
        ({"name": "[Tt]mp-*"}, {"name": "[Tt]mp-*"}),
        ({"name": "photo [1].gif"}, {"name": "photo [1].gif"}),  # [1] is a set: matches "photo 1.gif"
        ({"name": "a[*]b.webp"}, {"name": "a[*]b.webp"}),
        ({"name": "holiday.png"}, {"name": "holiday.png"}),
        ({"name": "*"}, {"name": "*"}),
        ({"type": "png"}, {"types": ("image/png",)}),
        ({"type": "jpg,gif"}, {"types": ("image/jpeg", "image/gif")}),
        ({"type": "image/webp"}, {"types": ("image/webp",)}),
        ({"name": "tmp*", "type": "png"}, {"name": "tmp*", "types": ("image/png",)}),
    ],
)
def test_a_filtered_listing_gives_exactly_the_matching_images_newest_first(
    stack: Stack, query, where
) -> None:
    records = put_ready(stack, 40)
    ids, _ = list_all(stack, **query, limit="7")
    assert ids == expected(records, **where)


def test_since_is_inclusive_until_exclusive_and_oldest_first_reverses_the_order(stack: Stack) -> None:
    records = put_ready(stack, 30)
    since = rules.format_timestamp(START + timedelta(seconds=5))
    until = rules.format_timestamp(START + timedelta(seconds=12))
    ids, _ = list_all(stack, since="2026-01-01T00:00:05Z", until="2026-01-01T00:00:12+00:00", order="oldest")
    assert ids == expected(records, since=since, until=until, oldest=True)
    assert len(ids) == 7


def test_a_date_alone_means_midnight_utc(stack: Stack) -> None:
    put_ready(stack, 3)
    assert list_all(stack, since="2026-01-01")[0] != []
    assert list_all(stack, until="2026-01-01")[0] == []
    assert list_all(stack, since="2026-01-02")[0] == []


def test_dates_and_order_are_the_index_key_condition_and_nothing_is_scanned(stack: Stack) -> None:
    put_ready(stack, 10)
    with counted_calls(stack.env) as calls:
        call_list(
            stack, since="2026-01-01T00:00:03Z", until="2026-01-01T00:00:08Z", order="oldest", name="*.png"
        )
    assert "Scan" not in operations(calls)
    (query,) = [c.body for c in calls if c.operation == "Query"]
    assert query["IndexName"] == "ReadyByDate"
    assert "BETWEEN" in query["KeyConditionExpression"]
    assert query["ScanIndexForward"] is True
    assert "FilterExpression" in query


@given(name=st.text(alphabet="ab*?[]-.!", max_size=8), pattern=st.text(alphabet="ab*?[]-.!", max_size=6))
def test_the_literal_parts_of_a_glob_never_exclude_a_name_it_matches(name: str, pattern: str) -> None:
    prefix, runs = rules.glob_literals(pattern)
    if fnmatch.fnmatchcase(name, pattern):
        assert name.startswith(prefix)
        assert all(run in name for run in runs)


# --- bounded reads, cursors that go on -----------------------------------------------------


def test_a_rare_match_reads_a_bounded_stretch_per_request_and_cursors_find_every_match(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(storage, "READ_BUDGET", 20)
    names = ["rare.png"] + [f"common-{n}.jpg" for n in range(24)]
    records = put_ready(stack, 100, names)  # one in 25 is rare
    with counted_calls(stack.env) as calls:
        ids, requests = list_all(stack, name="rare*", limit="50")
    assert ids == expected(records, name="rare*")
    assert len(ids) == 4
    assert requests >= 100 // 20  # no request read more than its budget...
    limits = [c.body["Limit"] for c in calls if c.operation == "Query"]
    assert max(limits) <= 20
    assert sum(limits) <= 100 + requests  # ...and none read a stretch twice


def test_a_request_with_an_empty_page_still_gives_a_cursor_to_go_on(stack: Stack, monkeypatch) -> None:
    monkeypatch.setattr(storage, "READ_BUDGET", 10)
    put_ready(stack, 30, ["rare.png"] + [f"c{n}.jpg" for n in range(29)])  # the rare one is the oldest
    first = answer_json(call_list(stack, name="rare*"))
    assert first["images"] == [] and first["nextCursor"]


def test_a_page_may_hold_a_thousand_images_and_no_more(stack: Stack) -> None:
    put_ready(stack, 1001, ["a.png"])
    page = answer_json(call_list(stack, limit="1000"))
    assert page["count"] == 1000 and page["nextCursor"]
    refused = call_list(stack, limit="1001")
    assert refused["statusCode"] == 400 and answer_json(refused)["field"] == "limit"


# --- how many remain -----------------------------------------------------------------------


def test_a_full_page_says_exactly_how_many_images_come_after_it(stack: Stack) -> None:
    put_ready(stack, 30)
    page = answer_json(call_list(stack, limit="10", countRemaining="true"))
    assert (page["remaining"], page["remainingExact"]) == (20, True)
    last = answer_json(call_list(stack, limit="30", countRemaining="true"))
    assert (last["remaining"], last["remainingExact"], last["nextCursor"]) == (0, True, None)


def test_past_its_budget_the_count_is_a_lower_bound(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(storage, "COUNT_BUDGET", 5)
    put_ready(stack, 30)
    page = answer_json(call_list(stack, limit="10", countRemaining="true"))
    assert (page["remaining"], page["remainingExact"]) == (5, False)


def test_the_count_of_a_filtered_listing_counts_the_matches_only(stack: Stack) -> None:
    records = put_ready(stack, 40)
    matches = expected(records, name="tmp*")
    page = answer_json(call_list(stack, name="tmp*", limit="2", countRemaining="true"))
    assert (page["remaining"], page["remainingExact"]) == (len(matches) - 2, True)


def test_the_count_costs_the_same_whatever_the_gallery_holds(stack: Stack, monkeypatch) -> None:
    monkeypatch.setattr(storage, "COUNT_BUDGET", 15)
    put_ready(stack, 60)
    with counted_calls(stack.env) as calls:
        call_list(stack, limit="5", countRemaining="true")
    counts = [c.body for c in calls if c.operation == "Query" and c.body.get("Select") == "COUNT"]
    assert [c["Limit"] for c in counts] == [15]


def test_without_countremaining_nothing_is_counted(stack: Stack) -> None:
    put_ready(stack, 12)
    with counted_calls(stack.env) as calls:
        page = answer_json(call_list(stack, limit="5"))
    assert "remaining" not in page
    assert len([c for c in calls if c.operation == "Query"]) == 1


def test_the_answer_echoes_the_filter_it_applied(stack: Stack) -> None:
    page = answer_json(call_list(stack, name="a*", type="jpg,png", since="2026-01-01", order="oldest"))
    assert page["filter"] == {
        "name": "a*",
        "type": ["image/jpeg", "image/png"],
        "since": "2026-01-01T00:00:00.000000Z",
    }
    assert page["order"] == "oldest"


# --- refusals --------------------------------------------------------------------------------

BAD_QUERIES: list[tuple[dict[str, Any], str]] = [
    ({"name": "x" * 256}, "name"),
    ({"name": "a\x00b"}, "name"),
    ({"name": "a\u202eb"}, "name"),
    ({"type": "svg"}, "type"),
    ({"type": "png,,"}, "type"),
    ({"type": "x" * 200}, "type"),
    ({"since": "yesterday"}, "since"),
    ({"since": "2026-02-30"}, "since"),
    ({"since": "0001-01-01"}, "since"),
    ({"since": "2026-01-01T25:00Z"}, "since"),
    ({"until": "2026-01-01T00:00:00.1234567Z"}, "until"),
    ({"since": "2026-01-02", "until": "2026-01-01"}, "since"),
    ({"since": "2026-01-01", "until": "2026-01-01"}, "since"),
    ({"order": "sideways"}, "order"),
    ({"countRemaining": "maybe"}, "countRemaining"),
    ({"limit": "1001"}, "limit"),
]


@pytest.mark.parametrize("query, field", BAD_QUERIES, ids=[str(q)[:40] for q, _ in BAD_QUERIES])
def test_a_bad_filter_is_a_400_that_names_its_parameter(stack: Stack, query, field) -> None:
    answer = call_list(stack, **query)
    assert answer["statusCode"] == 400
    body = answer_json(answer)
    assert body["field"] == field and body["error"]
