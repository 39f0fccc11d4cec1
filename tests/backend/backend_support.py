"""Helpers for the backend tests: sample images, the contract's table, and the Lambda-proxy and
S3 events that API Gateway and S3 send. The fixtures that use them are in conftest.py."""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from imgup.backend import handlers
from tests.samples import (  # noqa: F401  (re-exported for the backend tests)
    SAMPLES,
    gif_bytes,
    jpeg_bytes,
    png_bytes,
    sha256_hex,
    webp_bytes,
)

REGION = "us-east-1"
TABLE = "imgup-test-images"
BUCKET = "imgup-test-bucket"
API_KEY = "k3y-SECRET-do-not-log-0123456789"


def create_table(dynamodb: Any) -> None:
    """The table of docs/internals.md: key imageId, TTL purgeAt, sparse GSIs ReadyByDate and
    ReadyBySha256."""
    dynamodb.create_table(
        TableName=TABLE,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[
            {"AttributeName": "imageId", "AttributeType": "S"},
            {"AttributeName": "galleryPk", "AttributeType": "S"},
            {"AttributeName": "uploadedAt", "AttributeType": "S"},
            {"AttributeName": "readySha256", "AttributeType": "S"},
        ],
        KeySchema=[{"AttributeName": "imageId", "KeyType": "HASH"}],
        GlobalSecondaryIndexes=[
            {
                "IndexName": "ReadyByDate",
                "KeySchema": [
                    {"AttributeName": "galleryPk", "KeyType": "HASH"},
                    {"AttributeName": "uploadedAt", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            },
            {
                "IndexName": "ReadyBySha256",
                "KeySchema": [{"AttributeName": "readySha256", "KeyType": "HASH"}],
                "Projection": {"ProjectionType": "ALL"},
            },
        ],
    )
    dynamodb.update_time_to_live(
        TableName=TABLE,
        TimeToLiveSpecification={"Enabled": True, "AttributeName": "purgeAt"},
    )


@dataclass
class Stack:
    """The moto account under test: the function environment and direct clients to inspect it."""

    env: dict[str, str]
    s3: Any
    dynamodb: Any

    def objects(self) -> list[str]:
        answer = self.s3.list_objects_v2(Bucket=BUCKET)
        return sorted(o["Key"] for o in answer.get("Contents", []))

    def versions(self) -> list[tuple[str, str]]:
        """(key, version id) of every stored version and delete marker, oldest first per key."""
        answer = self.s3.list_object_versions(Bucket=BUCKET)
        entries = [*answer.get("Versions", []), *answer.get("DeleteMarkers", [])]
        entries.sort(key=lambda e: (e["Key"], e["LastModified"]))
        return [(e["Key"], e["VersionId"]) for e in entries]

    def fetch(self, url: str) -> bytes:
        """The bytes a presigned GET URL serves (moto intercepts the request)."""
        import requests

        answer = requests.get(url, timeout=10)
        answer.raise_for_status()
        return answer.content

    def record(self, image_id: str) -> dict[str, Any] | None:
        item = self.dynamodb.get_item(TableName=TABLE, Key={"imageId": {"S": image_id}})
        return item.get("Item")

    def put(self, key: str, data: bytes, content_type: str = "image/png") -> str | None:
        """Store an object; its version id (None in an unversioned bucket)."""
        answer = self.s3.put_object(Bucket=BUCKET, Key=key, Body=data, ContentType=content_type)
        return answer.get("VersionId")


def api_event(
    method: str,
    resource: str,
    *,
    path_params: dict[str, str] | None = None,
    query: dict[str, str] | None = None,
    body: Any = None,
    raw_body: str | None = None,
    base64_body: bool = False,
) -> dict[str, Any]:
    """A REST API Lambda-proxy event, as API Gateway sends it (API key header included)."""
    path = resource
    for name, value in (path_params or {}).items():
        path = path.replace("{" + name + "}", value)
    text = raw_body if raw_body is not None else (None if body is None else json.dumps(body))
    if base64_body and text is not None:
        text = base64.b64encode(text.encode("utf-8")).decode("ascii")
    headers = {"x-api-key": API_KEY, "content-type": "application/json", "Host": "api.example"}
    return {
        "resource": resource,
        "path": path,
        "httpMethod": method,
        "headers": headers,
        "multiValueHeaders": {k: [v] for k, v in headers.items()},
        "queryStringParameters": query,
        "multiValueQueryStringParameters": None if query is None else {k: [v] for k, v in query.items()},
        "pathParameters": path_params,
        "stageVariables": None,
        "requestContext": {
            "requestId": str(uuid.uuid4()),
            "stage": "v1",
            "resourcePath": resource,
            "httpMethod": method,
            "identity": {"apiKey": API_KEY, "sourceIp": "203.0.113.9"},
        },
        "body": text,
        "isBase64Encoded": base64_body,
    }


def s3_event(
    key: str, *, bucket: str = BUCKET, name: str = "ObjectCreated:Put", version_id: str | None = None
) -> dict[str, Any]:
    """An S3 notification as Lambda gets it: the key URL-encoded, spaces as '+', and the
    version written when given (S3 gives it in a versioned bucket)."""
    from urllib.parse import quote_plus

    written: dict[str, Any] = {"key": quote_plus(key, safe="/"), "size": 1}
    if version_id is not None:
        written["versionId"] = version_id
    return {
        "Records": [
            {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "awsRegion": REGION,
                "eventName": name,
                "s3": {
                    "bucket": {"name": bucket, "arn": f"arn:aws:s3:::{bucket}"},
                    "object": written,
                },
            }
        ]
    }


def answer_json(answer: dict[str, Any]) -> Any:
    assert answer["headers"]["Access-Control-Allow-Origin"]
    assert answer["headers"]["Content-Type"] == "application/json"
    return json.loads(answer["body"])


def put_with_checksum(stack: Stack, key: str, data: bytes, stored: bytes | None = None) -> str:
    """PUT as a presigned URL that signed x-amz-checksum-sha256 does: S3 stores the checksum."""
    checksum = base64.b64encode(hashlib.sha256(stored or data).digest()).decode()
    answer = stack.s3.put_object(
        Bucket=BUCKET,
        Key=key,
        Body=data,
        ContentType="image/png",
        ChecksumAlgorithm="SHA256",
        ChecksumSHA256=checksum,
    )
    return answer["VersionId"]


# --- calling the handlers as API Gateway does ----------------------------------------------

PNG = SAMPLES["image/png"]
OTHER_PNG = PNG.replace(b"xxxx", b"yyyy", 1)  # same type, same length, other bytes


def call_upload(stack: Stack, body: Any) -> dict[str, Any]:
    return handlers.upload(api_event("POST", "/upload", body=body), None, stack.env)


def start_upload(
    stack: Stack, data: bytes, *, file_type: str = "image/png", name: str = "a.png", **extra: Any
) -> dict:
    answer = call_upload(stack, {"fileName": name, "fileType": file_type, "fileSize": len(data), **extra})
    assert answer["statusCode"] == 200, answer["body"]
    return answer_json(answer)


def key_of(stack: Stack, image_id: str) -> str:
    record = stack.record(image_id)
    assert record is not None
    return record["s3Key"]["S"]


def call_complete(stack: Stack, image_id: str) -> dict[str, Any]:
    event = api_event("POST", "/images/{imageId}/complete", path_params={"imageId": image_id})
    return handlers.complete(event, None, stack.env)


def call_list(stack: Stack, **query: str) -> dict[str, Any]:
    event = api_event("GET", "/images", query=query or None)
    return handlers.images(event, None, stack.env)


def call_get(stack: Stack, image_id: str) -> dict[str, Any]:
    event = api_event("GET", "/images/{imageId}", path_params={"imageId": image_id})
    return handlers.images(event, None, stack.env)


def call_delete(stack: Stack, image_id: str) -> dict[str, Any]:
    event = api_event("DELETE", "/images/{imageId}", path_params={"imageId": image_id})
    return handlers.delete(event, None, stack.env)


def upload_ready(stack: Stack, data: bytes, file_type: str = "image/png", name: str = "a.png") -> str:
    started = start_upload(stack, data, file_type=file_type, name=name)
    stack.put(key_of(stack, started["imageId"]), data, file_type)
    assert call_complete(stack, started["imageId"])["statusCode"] == 200
    return started["imageId"]


def listed_ids(stack: Stack) -> list[str]:
    return [image["imageId"] for image in answer_json(call_list(stack))["images"]]


# --- counting what the handlers ask of S3 and DynamoDB ------------------------------------


@dataclass
class Call:
    """One API call: its service, operation, the HTTP request's headers and query, and its
    JSON body (DynamoDB)."""

    service: str
    operation: str
    headers: dict[str, str]
    query: dict[str, Any]
    body: dict[str, Any]


@contextmanager
def counted_calls(env: dict[str, str]) -> Iterator[list[Call]]:
    """Every S3 and DynamoDB API call the handlers make meanwhile (a botocore event hook on
    their cached clients; retries of one call count once; presigning is no call)."""
    from imgup.backend.settings import Settings, clients

    built = clients(Settings.from_environ(env).connection)
    calls: list[Call] = []

    def record(model: Any, params: dict[str, Any], **_: Any) -> None:
        headers = {str(k).lower(): str(v) for k, v in params.get("headers", {}).items()}
        raw = params.get("body")
        body = json.loads(raw) if model.service_model.service_name == "dynamodb" and raw else {}
        query = dict(params.get("query_string") or {})
        calls.append(Call(model.service_model.service_name, model.name, headers, query, body))

    hooks = [(client, f"counted-{id(calls)}-{n}") for n, client in enumerate((built.s3, built.dynamodb))]
    for client, unique in hooks:
        client.meta.events.register("before-call", record, unique_id=unique)
    try:
        yield calls
    finally:
        for client, unique in hooks:
            client.meta.events.unregister("before-call", record, unique_id=unique)


def operations(calls: list[Call]) -> list[str]:
    return [call.operation for call in calls]
