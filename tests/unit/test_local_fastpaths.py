"""The local stack's fast path for DynamoDB answers gives what moto's own serializer gives."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from imgup.local import fastpaths
from tests.backend.backend_support import TABLE, create_table

ITEM = {
    "imageId": {"S": "id-1"},
    "status": {"S": "ready"},
    "galleryPk": {"S": "ready"},
    "uploadedAt": {"S": "2026-12-01T00:00:00.000000Z"},
    "fileSize": {"N": "1234"},
    "ratio": {"N": "1.5"},
    "tags": {"M": {"trip": {"S": "rome"}, "n": {"N": "3"}}},
    "list": {"L": [{"S": "a"}, {"N": "2"}, {"BOOL": True}, {"NULL": True}]},
    "set": {"SS": ["x", "y"]},
    "numbers": {"NS": ["1", "2"]},
    "flag": {"BOOL": False},
}


@pytest.fixture(autouse=True)
def moto_as_it_was(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test starts from moto's own methods, and leaves them so (fastpaths.install
    patches them for the whole process)."""
    from moto.core import responses
    from moto.core.base_backend import BackendDict
    from moto.core.responses import ActionResult
    from moto.dynamodb.comparisons import ConditionExpressionParser
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.models.dynamo_type import Item
    from moto.dynamodb.models.table import Table
    from moto.s3.models import FakeKey, S3Backend
    from moto.s3.utils import _VersionedKeyStore

    patched = [
        (ActionResult, "execute_result"),
        (Table, "query"),
        (Table, "all_items"),
        (Table, "sorted_items"),
        (responses, "method_names_from_class"),
        (Item, "project"),
        (S3Backend, "list_object_versions"),
        (FakeKey, "dispose"),
        (FakeKey, "value"),
        (_VersionedKeyStore, "iterlists"),
        (BackendDict, "_create_account_specific_backend"),
        (ConditionExpressionParser, "parse"),
        (Item, "__init__"),
        (Table, "put_item"),
        (Table, "delete_item"),
        *((DynamoDBBackend, name) for name in ("update_item", *fastpaths._WHOLESALE_WRITES)),
    ]
    for owner, name in patched:
        current = getattr(owner, name)
        monkeypatch.setattr(owner, name, getattr(current, "__wrapped__", current))


@pytest.fixture
def compared(monkeypatch: pytest.MonkeyPatch):
    """A DynamoDB client (moto, in this process) whose every result is serialized both by the
    fast path and by moto's serializer, asserting the two answers equal; the list of
    (operation, took the fast path). moto is left as it was."""
    import boto3
    from moto import mock_aws
    from moto.core import responses
    from moto.core.responses import ActionResult

    monkeypatch.setattr(ActionResult, "execute_result", ActionResult.execute_result)  # restored after
    monkeypatch.setattr(responses, "method_names_from_class", responses.method_names_from_class)
    original = ActionResult.execute_result
    fastpaths.install()
    fast = ActionResult.execute_result
    seen: list[tuple[str, bool]] = []
    taken: list[bool] = []
    plain_json = fastpaths.plain_json

    def recording(result: Any, members: Any = None) -> str | None:
        body = plain_json(result, members)
        taken.append(body is not None)
        return body

    monkeypatch.setattr(fastpaths, "plain_json", recording)

    def both(self: Any, context: Any) -> Any:
        slow = original(self, context)
        taken.clear()
        quick = fast(self, context)
        if context.service_model.service_name == "dynamodb":
            assert quick[0] == slow[0] and quick[1] == slow[1]
            assert json.loads(quick[2] or "{}") == json.loads(slow[2] or "{}")
            seen.append((context.operation_model.name, taken == [True]))
        return slow

    monkeypatch.setattr(ActionResult, "execute_result", both)
    with mock_aws():
        db = boto3.client("dynamodb", region_name="us-east-1")
        create_table(db)
        yield db, seen


def test_item_operations_answer_the_same_through_the_fast_path(compared) -> None:
    db, seen = compared
    db.put_item(TableName=TABLE, Item=ITEM)
    db.put_item(TableName=TABLE, Item={**ITEM, "imageId": {"S": "id-2"}}, ReturnValues="ALL_OLD")
    assert db.get_item(TableName=TABLE, Key={"imageId": {"S": "id-1"}})["Item"] == ITEM
    db.get_item(TableName=TABLE, Key={"imageId": {"S": "nobody"}})
    page = db.query(
        TableName=TABLE,
        IndexName="ReadyByDate",
        KeyConditionExpression="galleryPk = :r",
        ExpressionAttributeValues={":r": {"S": "ready"}},
        Limit=1,
    )
    assert page["Count"] == 1 and "LastEvaluatedKey" in page
    db.batch_get_item(
        RequestItems={TABLE: {"Keys": [{"imageId": {"S": "id-1"}}, {"imageId": {"S": "id-2"}}]}}
    )
    db.batch_write_item(RequestItems={TABLE: [{"PutRequest": {"Item": {**ITEM, "imageId": {"S": "id-3"}}}}]})
    db.update_item(
        TableName=TABLE,
        Key={"imageId": {"S": "id-1"}},
        UpdateExpression="SET #s = :s",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={":s": {"S": "rejected"}},
        ReturnValues="ALL_NEW",
    )
    db.delete_item(TableName=TABLE, Key={"imageId": {"S": "id-2"}}, ReturnValues="ALL_OLD")
    db.scan(TableName=TABLE)
    db.describe_table(TableName=TABLE)  # timestamps: moto's serializer, as before

    fast = {operation for operation, took in seen if took}
    assert {
        "PutItem",
        "GetItem",
        "Query",
        "BatchGetItem",
        "BatchWriteItem",
        "UpdateItem",
        "DeleteItem",
    } <= fast
    assert ("DescribeTable", False) in seen


@pytest.mark.parametrize(
    ("result", "expected"),
    [
        ({"Item": {"a": {"S": "x"}}, "ConsumedCapacity": None}, '{"Item":{"a":{"S":"x"}}}'),
        ({"Items": [], "Count": 0}, '{"Items":[],"Count":0}'),
        ({"Item": {"a": {"B": b"\x00"}}}, None),
        ({"When": float("nan")}, None),
        ([], None),
    ],
)
def test_plain_json_takes_only_plain_values(result: Any, expected: str | None) -> None:
    assert fastpaths.plain_json(result) == expected


def _pages(db: Any, **query: Any) -> list[list[str]]:
    pages: list[list[str]] = []
    start: dict | None = None
    for _ in range(200):
        kwargs = dict(query, ExclusiveStartKey=start) if start else dict(query)
        answer = db.query(**kwargs)
        pages.append([item["imageId"]["S"] for item in answer["Items"]])
        start = answer.get("LastEvaluatedKey")
        if not start:
            return pages
    raise AssertionError("the query never ended")


def test_queries_page_through_the_same_items_in_the_same_order_with_unsorted_table_items(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import random

    import boto3
    from moto import mock_aws
    from moto.core import responses as moto_responses
    from moto.dynamodb.models.table import Table

    monkeypatch.setattr(Table, "query", Table.query)  # both restored after
    monkeypatch.setattr(Table, "all_items", Table.all_items)
    monkeypatch.setattr(Table, "sorted_items", Table.sorted_items)
    monkeypatch.setattr(moto_responses, "method_names_from_class", moto_responses.method_names_from_class)
    fastpaths.install()
    fast_query, fast_items, fast_sort = Table.query, Table.all_items, Table.sorted_items
    generator = random.Random(7)
    queries = {
        "newest": {"KeyConditionExpression": "galleryPk = :r", "ScanIndexForward": False},
        "oldest": {"KeyConditionExpression": "galleryPk = :r", "ScanIndexForward": True},
        "since": {
            "KeyConditionExpression": "galleryPk = :r AND uploadedAt >= :t",
            "ScanIndexForward": False,
        },
        "same-bytes": {"KeyConditionExpression": "readySha256 = :h", "IndexName": "ReadyBySha256"},
        "no-such-bytes": {"KeyConditionExpression": "readySha256 = :n", "IndexName": "ReadyBySha256"},
    }
    values = {
        ":r": {"S": "ready"},
        ":t": {"S": "2026-12-02T00:00:00.000000Z"},
        ":h": {"S": "ab" * 32},
        ":n": {"S": "cd" * 32},
    }
    with mock_aws():
        db = boto3.client("dynamodb", region_name="us-east-1")
        create_table(db)
        for n in range(300):
            item = {"imageId": {"S": f"id-{generator.randrange(10**9):09d}"}}
            if n % 5:  # some items are not in the index at all
                stamp = f"2026-12-{generator.randrange(1, 4):02d}T00:00:{generator.randrange(60):02d}.000000Z"
                item.update(galleryPk={"S": "ready"}, uploadedAt={"S": stamp})
                item.update(readySha256={"S": generator.choice(["ab", "ef", "01"]) * 32})
            db.put_item(TableName=TABLE, Item=item)
        answers = {}
        for name, (query, items, sort) in {
            "fast": (fast_query, fast_items, fast_sort),
            "moto": (fast_query.__wrapped__, fast_items.__wrapped__, fast_sort.__wrapped__),
        }.items():
            monkeypatch.setattr(Table, "query", query)
            monkeypatch.setattr(Table, "all_items", items)
            monkeypatch.setattr(Table, "sorted_items", sort)
            answers[name] = {
                key: _pages(
                    db,
                    TableName=TABLE,
                    Limit=7,
                    ExpressionAttributeValues={k: v for k, v in values.items() if k in str(options)},
                    **{"IndexName": "ReadyByDate", **options},
                )
                for key, options in queries.items()
            }
            answers[name]["scan"] = [[i["imageId"]["S"] for i in db.scan(TableName=TABLE)["Items"]]]
    assert answers["fast"] == answers["moto"]
    assert sum(len(page) for page in answers["fast"]["newest"]) == 240
    assert 40 < sum(len(page) for page in answers["fast"]["same-bytes"]) < 120
    assert answers["fast"]["no-such-bytes"] == [[]]


def test_the_actions_of_a_handler_class_are_listed_once_and_as_moto_lists_them(monkeypatch) -> None:
    from moto.core import responses
    from moto.dynamodb.responses import DynamoHandler
    from moto.s3.responses import S3Response

    monkeypatch.setattr(responses, "method_names_from_class", responses.method_names_from_class)
    fastpaths.install()
    listed = responses.method_names_from_class
    for handler in (DynamoHandler, S3Response):
        assert listed(handler) == frozenset(listed.__wrapped__(handler))
        assert listed(handler) is listed(handler)
    assert "get_item" in listed(DynamoHandler)


def test_object_versions_under_a_prefix_are_listed_as_moto_lists_them(monkeypatch) -> None:
    import boto3
    from moto import mock_aws
    from moto.s3.models import S3Backend
    from moto.s3.utils import _VersionedKeyStore

    monkeypatch.setattr(S3Backend, "list_object_versions", S3Backend.list_object_versions)  # restored
    monkeypatch.setattr(_VersionedKeyStore, "iterlists", _VersionedKeyStore.iterlists)
    moto_listing = S3Backend.list_object_versions
    moto_iterlists = _VersionedKeyStore.iterlists
    keys = ["images", "images/a.png", "images/a.png2", "images/b/c.png", "imagesx/d.png", "thumbnails/a.webp"]
    asked = [
        {"Prefix": "images/a.png"},
        {"Prefix": "images/"},
        {"Prefix": "images/", "Delimiter": "/"},
        {"Prefix": "images/", "MaxKeys": 2},
        {"Prefix": "image"},
        {"Prefix": "nothing/"},
        {},
    ]

    def every_page(s3: Any, **query: Any) -> list[dict]:
        pages, token = [], {}
        for _ in range(50):
            page = s3.list_object_versions(Bucket="fastpath-versions", **query, **token)
            for entry in [*page.get("Versions", []), *page.get("DeleteMarkers", [])]:
                entry.pop("LastModified", None)
            pages.append({k: v for k, v in page.items() if k != "ResponseMetadata"})
            if not page.get("IsTruncated"):
                return pages
            token = {"KeyMarker": page["NextKeyMarker"]}
            if page.get("NextVersionIdMarker"):
                token["VersionIdMarker"] = page["NextVersionIdMarker"]
        raise AssertionError("more than 50 pages")

    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="fastpath-versions")
        s3.put_bucket_versioning(Bucket="fastpath-versions", VersioningConfiguration={"Status": "Enabled"})
        for round_ in range(2):
            for key in keys:
                s3.put_object(Bucket="fastpath-versions", Key=key, Body=f"{key} {round_}".encode())
        s3.delete_object(Bucket="fastpath-versions", Key="images/a.png2")  # a delete marker
        slow = [every_page(s3, **query) for query in asked]
        fastpaths.install()
        assert S3Backend.list_object_versions is not moto_listing
        assert _VersionedKeyStore.iterlists is not moto_iterlists
        fast = [every_page(s3, **query) for query in asked]
        listed = [sorted(v["Key"] for page in pages for v in page.get("Versions", [])) for pages in fast]

    assert fast == slow
    assert listed[0] == ["images/a.png", "images/a.png", "images/a.png2", "images/a.png2"]
    assert len(fast[3]) > 1  # pages of two


@pytest.mark.parametrize(
    "projection",
    [
        "#imageId, #fileName, #fileSize",
        "#tags, #flag, #set, #numbers, #list, #missing",
        "#nested.#inner",
        "#blob",
        "#mapWithBlob",
    ],
)
def test_a_projection_gives_what_moto_gives(projection: str) -> None:
    import boto3
    from moto import mock_aws
    from moto.dynamodb.models.dynamo_type import Item

    item = {
        **ITEM,
        "imageId": {"S": "i-1"},
        "fileName": {"S": "a.png"},
        "fileSize": {"N": "1.50"},
        "tags": {"M": {"trip": {"S": "rome"}, "n": {"N": "7"}}},
        "nested": {"M": {"inner": {"S": "x"}, "other": {"S": "y"}}},
        "blob": {"B": b"\x00\xff"},
        "mapWithBlob": {"M": {"b": {"B": b"\x01"}}},
    }
    query = {
        "TableName": "projected",
        "Key": {"imageId": {"S": "i-1"}},
        "ProjectionExpression": projection,
        "ExpressionAttributeNames": {f"#{name}": name for name in re.findall(r"#(\w+)", projection)},
    }
    with mock_aws():
        db = boto3.client("dynamodb", region_name="us-east-1")
        db.create_table(
            TableName="projected",
            KeySchema=[{"AttributeName": "imageId", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "imageId", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        db.put_item(TableName="projected", Item=item)
        slow = db.get_item(**query)["Item"]
        fastpaths.install()
        assert getattr(Item.project, "__wrapped__", None) is not None
        fast = db.get_item(**query)["Item"]
    assert _sets_sorted(fast) == _sets_sorted(slow)


def _sets_sorted(item: dict) -> dict:
    """Sets have no order (moto's own projection passes them through a Python set)."""
    return {
        name: {kind: sorted(v) if kind in ("SS", "NS") else v for kind, v in value.items()}
        for name, value in item.items()
    }


def test_a_backend_is_found_by_account_as_moto_finds_it_and_listed_as_moto_lists_it(monkeypatch) -> None:
    from moto.core.base_backend import BackendDict
    from moto.dynamodb.models import DynamoDBBackend

    fastpaths.install()
    monkeypatch.setattr(BackendDict, "_instances", [])
    backends = BackendDict(DynamoDBBackend, "dynamodb")
    assert getattr(BackendDict._create_account_specific_backend, "__wrapped__", None) is not None
    first = backends["123456789012"]["us-east-1"]
    assert backends["123456789012"]["us-east-1"] is first
    assert BackendDict._instances == [backends]  # listed when it got its first account
    other = backends["210987654321"]
    assert other is not backends["123456789012"] and set(backends) == {"123456789012", "210987654321"}
    assert BackendDict._instances == [backends]

    BackendDict.reset()  # moto's reset empties both the list and the dictionary...
    assert BackendDict._instances == [] and dict(backends) == {}
    assert backends["123456789012"]["us-east-1"] is not first  # ...and a new look-up lists it again
    assert BackendDict._instances == [backends]


def _moto_then_fast(scenario: Any, owner: type, method: str) -> dict[str, Any]:
    """What ``scenario(db)`` answers on a new table, with moto as it is, then with the fast
    paths installed (which replace ``owner.method``, the one the test is about)."""
    import boto3
    from moto import mock_aws

    answers = {}
    for name in ("moto", "fast"):
        with mock_aws():
            if name == "fast":
                fastpaths.install()
                assert getattr(getattr(owner, method), "__wrapped__", None) is not None
            db = boto3.client("dynamodb", region_name="us-east-1")
            create_table(db)
            answers[name] = scenario(db)
    return answers


def _conditional_writes(db: Any) -> list[str]:
    """What a series of conditional writes answers: the same expression with other values, an
    unused name, an expression that does not parse, each twice."""
    from botocore.exceptions import ClientError

    key = {"imageId": {"S": "c-1"}}
    db.put_item(TableName=TABLE, Item={**key, "status": {"S": "pending"}})
    names = {"#s": "status"}
    attempts = [
        ("#s = :v", names, {":v": {"S": "pending"}}, "ready"),
        ("#s = :v", names, {":v": {"S": "pending"}}, "ready"),  # now ready: fails
        ("#s = :v", names, {":v": {"S": "ready"}}, "done"),
        ("#s = :v", {**names, "#unused": "x"}, {":v": {"S": "done"}}, "again"),
        ("#s = :v", {**names, "#unused": "x"}, {":v": {"S": "done"}}, "again"),
        ("#s = = :v", names, {":v": {"S": "done"}}, "broken"),
        ("#s = = :v", names, {":v": {"S": "done"}}, "broken"),
        ("attribute_not_exists(imageId)", None, None, "new"),
        (
            "#s IN (:a, :b) AND attribute_exists(imageId)",
            names,
            {":a": {"S": "x"}, ":b": {"S": "done"}},
            "in",
        ),
    ]
    answers = []
    for condition, used_names, values, new_status in attempts:
        kwargs: dict[str, Any] = {"ConditionExpression": condition}
        if used_names:
            kwargs["ExpressionAttributeNames"] = used_names
        if values:
            kwargs["ExpressionAttributeValues"] = values
        try:
            db.put_item(TableName=TABLE, Item={**key, "status": {"S": new_status}}, **kwargs)
            answers.append("written")
        except ClientError as exc:
            answers.append(exc.response["Error"]["Code"])
        except ValueError as exc:  # moto, in this process, lets its parser's error through
            answers.append(f"ValueError: {exc}")
        answers.append(db.get_item(TableName=TABLE, Key=key)["Item"]["status"]["S"])
    return answers


def test_conditions_parsed_once_are_judged_as_moto_judges_them() -> None:
    from moto.dynamodb.comparisons import ConditionExpressionParser

    answers = _moto_then_fast(_conditional_writes, ConditionExpressionParser, "parse")
    assert answers["fast"] == answers["moto"]
    assert answers["fast"][:6] == [
        "written",
        "ready",
        "ConditionalCheckFailedException",
        "ready",
        "written",
        "done",
    ]
    assert answers["fast"][6] == answers["fast"][8] == "ValidationException"  # the unused name, both times
    assert answers["fast"][10] == answers["fast"][12] == "ValueError: Bad comparison #s = ="  # both times


def test_items_are_sized_and_refused_over_the_limit_as_moto_sizes_them() -> None:
    from botocore.exceptions import ClientError
    from moto.dynamodb.models.dynamo_type import Item

    def writes(db: Any) -> list[Any]:
        answers: list[Any] = []
        # without its padding the item has 157 bytes: 404,843 of padding make 405,000, the limit
        for n, padding in enumerate((404_000, 404_843, 404_844, 500_000)):
            item = {
                **ITEM,
                "imageId": {"S": f"big-{n}"},
                "padding": {"S": "x" * padding},
                "more": {"M": {"list": {"L": [{"N": "12.5"}, {"SS": ["a", "bb"]}]}}},
            }
            try:
                db.put_item(TableName=TABLE, Item=item)
                stored = db.get_item(TableName=TABLE, Key={"imageId": item["imageId"]})["Item"]
                answers.append(("stored", list(stored) == list(item) or sorted(stored) == sorted(item)))
            except ClientError as exc:
                answers.append((exc.response["Error"]["Code"], exc.response["Error"]["Message"]))
        return answers

    found = _moto_then_fast(writes, Item, "__init__")
    assert found["fast"] == found["moto"]
    assert [kind for kind, _ in found["fast"]] == [
        "stored",
        "stored",
        "ValidationException",
        "ValidationException",
    ]


def _writes_then_lookups(db: Any) -> list[Any]:
    """Images by SHA-256 (the ReadyBySha256 index) after each kind of write: puts, conditional
    puts that fail, updates that set, change and remove the key, a failed conditional update,
    deletes, batch writes, a transaction that is cancelled and one that succeeds, PartiQL."""
    from botocore.exceptions import ClientError

    def by(digest: str) -> list[str]:
        answer = db.query(
            TableName=TABLE,
            IndexName="ReadyBySha256",
            KeyConditionExpression="readySha256 = :h",
            ExpressionAttributeValues={":h": {"S": digest}},
        )
        return sorted(item["imageId"]["S"] for item in answer["Items"])

    def key(n: int) -> dict[str, Any]:
        return {"imageId": {"S": f"id-{n}"}}

    seen: list[Any] = []

    def look() -> None:
        seen.append([by(d) for d in ("aa", "bb", "cc")])

    def attempt(call: Any, **kwargs: Any) -> None:
        try:
            call(TableName=TABLE, **kwargs) if "TransactItems" not in kwargs else call(**kwargs)
            seen.append("ok")
        except ClientError as exc:
            seen.append(exc.response["Error"]["Code"])

    for n in range(6):
        db.put_item(TableName=TABLE, Item={**key(n), "readySha256": {"S": "aa" if n % 2 else "bb"}})
    look()  # the first lookup builds the index
    db.put_item(TableName=TABLE, Item={**key(9), "readySha256": {"S": "aa"}})
    db.put_item(TableName=TABLE, Item={**key(1), "status": {"S": "pending"}})  # loses its key
    attempt(
        db.put_item,
        Item={**key(2), "readySha256": {"S": "cc"}},
        ConditionExpression="attribute_not_exists(imageId)",
    )
    look()
    db.update_item(
        TableName=TABLE,
        Key=key(0),
        UpdateExpression="SET readySha256 = :c",
        ExpressionAttributeValues={":c": {"S": "cc"}},
    )
    db.update_item(TableName=TABLE, Key=key(3), UpdateExpression="REMOVE readySha256")
    db.update_item(
        TableName=TABLE,
        Key=key(7),
        UpdateExpression="SET readySha256 = :c",
        ExpressionAttributeValues={":c": {"S": "cc"}},
    )  # a new item
    attempt(
        db.update_item,
        Key=key(5),
        UpdateExpression="SET readySha256 = :c",
        ConditionExpression="attribute_not_exists(imageId)",
        ExpressionAttributeValues={":c": {"S": "cc"}},
    )
    look()
    db.delete_item(TableName=TABLE, Key=key(9))
    db.batch_write_item(
        RequestItems={
            TABLE: [
                {"PutRequest": {"Item": {**key(10), "readySha256": {"S": "bb"}}}},
                {"DeleteRequest": {"Key": key(4)}},
            ]
        }
    )
    look()
    transaction = [
        {"Put": {"TableName": TABLE, "Item": {**key(11), "readySha256": {"S": "aa"}}}},
        {
            "Update": {
                "TableName": TABLE,
                "Key": key(5),
                "UpdateExpression": "SET readySha256 = :c",
                "ExpressionAttributeValues": {":c": {"S": "cc"}},
            }
        },
        {"Delete": {"TableName": TABLE, "Key": key(10)}},
    ]
    cancelled = [
        *transaction,
        {
            "ConditionCheck": {
                "TableName": TABLE,
                "Key": key(99),
                "ConditionExpression": "attribute_exists(imageId)",
            }
        },
    ]
    attempt(db.transact_write_items, TransactItems=cancelled)
    look()  # nothing of it happened
    attempt(db.transact_write_items, TransactItems=transaction)
    look()
    db.execute_statement(Statement=f"UPDATE \"{TABLE}\" SET readySha256='bb' WHERE imageId='id-11'")  # noqa: S608
    look()
    return seen


def test_an_index_query_finds_the_items_moto_finds_after_every_kind_of_write() -> None:
    from moto.dynamodb.models.table import Table

    answers = _moto_then_fast(_writes_then_lookups, Table, "put_item")
    assert answers["fast"] == answers["moto"]
    lookups = [step for step in answers["fast"] if isinstance(step, list)]
    assert lookups[0] == [["id-1", "id-3", "id-5"], ["id-0", "id-2", "id-4"], []]
    assert lookups[2] == [["id-5", "id-9"], ["id-2", "id-4"], ["id-0", "id-7"]]
    assert lookups[4] == lookups[3]  # the cancelled transaction
    assert lookups[-1][1] == ["id-11", "id-2"] and "id-11" not in lookups[-1][0]


def test_random_strings_are_drawn_as_moto_draws_them_in_one_call() -> None:
    import string

    from moto.moto_api._internal import mock_random
    from moto.moto_api._internal.moto_random import MotoRandom
    from moto.utilities.aws_headers import gen_amzn_requestid_long

    fastpaths.install()
    fast = MotoRandom.get_random_string
    assert fast.__wrapped__ is not fast  # installed, and moto's kept beside it
    for draw in (fast, fast.__wrapped__):
        mixed = draw(mock_random, length=2000)
        assert len(mixed) == 2000 and set(mixed) == set(string.ascii_letters + string.digits)
        assert set(draw(mock_random, length=2000, include_digits=False)) == set(string.ascii_letters)
        assert set(draw(mock_random, length=2000, lower_case=True)) == set(
            string.ascii_lowercase + string.digits
        )
        assert len(draw(mock_random)) == 20
    ids = {gen_amzn_requestid_long() for _ in range(500)}  # every answer's x-amzn-requestid
    assert len(ids) == 500 and {len(i) for i in ids} == {52}
    try:
        mock_random.seed(7)
        first = mock_random.get_random_string(length=52)
        mock_random.seed(7)
        assert mock_random.get_random_string(length=52) == first  # still reproducible when seeded
    finally:
        mock_random.seed()  # back to unpredictable, for the tests after this one


def test_a_read_of_an_s3_version_deleted_meanwhile_answers_no_such_key() -> None:
    # moto closed a deleted version's buffer under a read that had found it: "I/O operation
    # on closed file" (a 500 on the local stack). S3 answers such a read with the bytes or
    # NoSuchKey; now moto does too, and a read before the delete still gets the bytes.
    import boto3
    from moto import mock_aws
    from moto.s3.exceptions import MissingKey

    fastpaths.install_deleted_key_reads()
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="bucket-one")
        s3.put_object(Bucket="bucket-one", Key="k", Body=b"hello")
        from moto.s3.models import s3_backends

        key = s3_backends["123456789012"]["aws"].get_object("bucket-one", "k")
        assert key is not None and key.value == b"hello"
        key.dispose()  # what deleting the version does, while a reader holds the key
        with pytest.raises(MissingKey):
            key.value  # noqa: B018 - the read is the test
        fastpaths.install_deleted_key_reads()  # installing again changes nothing
        assert type(key).value.__wrapped__.fget is not None
