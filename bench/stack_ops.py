"""The local stack's own CPU for the handlers' three operations per upload (a conditional
PutItem, a Query of the SHA-256 index, a GET of a 20 KiB object), without HTTP.

Builds the stack's application in this process (its endpoint is never listened on), sends
each call once through a boto3 client to capture the request the handlers' process sends,
then replays it into ``InProcessDispatch.serve`` N times: CPU microseconds per call, best and
median of 10 batches. ``--profile put`` (or query, get) adds a cProfile of that call.

    .venv/bin/python bench/stack_ops.py 2000
    .venv/bin/python bench/stack_ops.py 1000 --profile put
"""

import argparse
import cProfile
import json
import os
import pstats
import time
from collections.abc import Callable
from typing import Any

ITEM = {
    "imageId": {"S": "x"},
    "status": {"S": "ready"},
    "fileName": {"S": "a.png"},
    "fileSize": {"N": "20480"},
    "fileType": {"S": "image/png"},
    "uploadedAt": {"S": "2026-12-02T00:00:00Z"},
    "readySha256": {"S": "ab" * 32},
    "width": {"N": "10"},
    "height": {"N": "10"},
    "tags": {"M": {}},
    "s3Key": {"S": "images/x.png"},
}
Request = tuple[str, str, dict[str, str], bytes]


def captured_requests(clients: Any, dispatch: Any) -> dict[str, Request]:
    """Each operation sent once through a boto3 client; the request the stack was given."""
    db, s3 = clients("dynamodb", "us-east-1"), clients("s3", "us-east-1")
    db.create_table(
        TableName="t",
        KeySchema=[{"AttributeName": "imageId", "KeyType": "HASH"}],
        AttributeDefinitions=[
            {"AttributeName": "imageId", "AttributeType": "S"},
            {"AttributeName": "readySha256", "AttributeType": "S"},
        ],
        GlobalSecondaryIndexes=[
            {
                "IndexName": "sha",
                "KeySchema": [{"AttributeName": "readySha256", "KeyType": "HASH"}],
                "Projection": {"ProjectionType": "ALL"},
            }
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    s3.create_bucket(Bucket="bucket-one")
    s3.put_object(Bucket="bucket-one", Key="k", Body=b"\x89PNG\r\n\x1a\n" + os.urandom(20 * 1024))
    operations: dict[str, Callable[[], Any]] = {
        "put": lambda: db.put_item(
            TableName="t",
            Item=ITEM,
            ConditionExpression="attribute_not_exists(imageId) OR #s = :p",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={":p": {"S": "pending"}},
        ),
        "query": lambda: db.query(
            TableName="t",
            IndexName="sha",
            KeyConditionExpression="#sha = :sha",
            ExpressionAttributeNames={"#sha": "readySha256"},
            ExpressionAttributeValues={":sha": {"S": "cd" * 32}},
            Limit=1,
        ),
        "get": lambda: s3.get_object(Bucket="bucket-one", Key="k")["Body"].read(),
    }
    captured: dict[str, Request] = {}
    serve = dispatch.serve
    for name, operation in operations.items():

        def recording(*request: Any, name: str = name) -> Any:
            captured.setdefault(name, request)  # type: ignore[arg-type]
            return serve(*request)

        dispatch.serve = recording
        try:
            operation()
        finally:
            del dispatch.serve  # the class's own again
    return captured


def bodies(name: str, body: bytes, n: int, prefix: str) -> list[bytes]:
    """n bodies of the request: a PutItem of a new image each time (the condition holds),
    the others as they are."""
    if name != "put":
        return [body] * n
    sent = json.loads(body)
    return [
        json.dumps({**sent, "Item": {**ITEM, "imageId": {"S": f"{prefix}{i}"}}}).encode() for i in range(n)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("n", type=int, nargs="?", default=2000, help="calls of each operation (default 2000)")
    parser.add_argument("--profile", choices=["put", "query", "get"], help="also cProfile this operation")
    args = parser.parse_args()
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    from imgup.local import inprocess, server

    endpoint = "http://127.0.0.1:9"  # never listened on: every call is answered in-process
    app = server.LocalStackApp(endpoint)
    captured = captured_requests(inprocess.Clients(endpoint), app.dispatch)
    batch = max(1, args.n // 10)
    for name, (method, url, headers, body) in captured.items():
        sent = bodies(name, body, batch * 10, "y")
        per_call = []
        for start in range(0, batch * 10, batch):
            began = time.process_time()
            for one in sent[start : start + batch]:
                app.dispatch.serve(method, url, headers, one)
            per_call.append((time.process_time() - began) / batch * 1e6)
        per_call.sort()
        print(f"{name}: {per_call[0]:.0f}/{per_call[len(per_call) // 2]:.0f} us (best/median)")
    if args.profile:
        method, url, headers, body = captured[args.profile]
        profiler = cProfile.Profile()
        for one in bodies(args.profile, body, args.n, "z"):
            profiler.runcall(app.dispatch.serve, method, url, headers, one)
        pstats.Stats(profiler).sort_stats("tottime").print_stats(25)


if __name__ == "__main__":
    main()
