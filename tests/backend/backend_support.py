"""Helpers for the backend tests: sample images, the contract's table, and the Lambda-proxy and
S3 events that API Gateway and S3 send. The fixtures that use them are in conftest.py."""

from __future__ import annotations

import base64
import json
import uuid
from dataclasses import dataclass
from typing import Any

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
    """The table of docs/internals.md: key imageId, TTL purgeAt, sparse GSI ReadyByDate."""
    dynamodb.create_table(
        TableName=TABLE,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[
            {"AttributeName": "imageId", "AttributeType": "S"},
            {"AttributeName": "galleryPk", "AttributeType": "S"},
            {"AttributeName": "uploadedAt", "AttributeType": "S"},
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
            }
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

    def record(self, image_id: str) -> dict[str, Any] | None:
        item = self.dynamodb.get_item(TableName=TABLE, Key={"imageId": {"S": image_id}})
        return item.get("Item")

    def put(self, key: str, data: bytes, content_type: str = "image/png") -> None:
        self.s3.put_object(Bucket=BUCKET, Key=key, Body=data, ContentType=content_type)


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


def s3_event(key: str, *, bucket: str = BUCKET, name: str = "ObjectCreated:Put") -> dict[str, Any]:
    """An S3 notification as Lambda gets it: the key URL-encoded, spaces as '+'."""
    from urllib.parse import quote_plus

    return {
        "Records": [
            {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "awsRegion": REGION,
                "eventName": name,
                "s3": {
                    "bucket": {"name": bucket, "arn": f"arn:aws:s3:::{bucket}"},
                    "object": {"key": quote_plus(key, safe="/"), "size": 1},
                },
            }
        ]
    }


def answer_json(answer: dict[str, Any]) -> Any:
    assert answer["headers"]["Access-Control-Allow-Origin"]
    assert answer["headers"]["Content-Type"] == "application/json"
    return json.loads(answer["body"])
