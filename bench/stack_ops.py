"""The local stack's own CPU for the handlers' three operations per upload (a conditional
PutItem, a Query of the SHA-256 index, a GET of a 20 KiB object), without HTTP.

Builds the stack's application in this process (its endpoint is never listened on), sends
each call once through a boto3 client to capture the request the handlers' process sends,
then replays it into ``InProcessDispatch.serve`` N times: CPU microseconds per call, best and
median of 10 batches. ``PROF=put`` (or query, get) adds a cProfile of that call.

    .venv/bin/python bench/stack_ops.py 2000
"""

import cProfile
import os
import pstats
import sys
import time

os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
from imgup.local import inprocess, server

endpoint = "http://127.0.0.1:9"
app = server.LocalStackApp(endpoint)
clients = inprocess.Clients(endpoint)
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
data = b"\x89PNG\r\n\x1a\n" + os.urandom(20 * 1024)
s3.put_object(Bucket="bucket-one", Key="k", Body=data)
item = {
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
N = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
ops = {
    "put": lambda i: db.put_item(
        TableName="t",
        Item={**item, "imageId": {"S": f"x{i}"}},
        ConditionExpression="attribute_not_exists(imageId) OR #s = :p",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={":p": {"S": "pending"}},
    ),
    "query": lambda i: db.query(
        TableName="t",
        IndexName="sha",
        KeyConditionExpression="#sha = :sha",
        ExpressionAttributeNames={"#sha": "readySha256"},
        ExpressionAttributeValues={":sha": {"S": f"{i:064x}"}},
        Limit=1,
    ),
    "get": lambda i: s3.get_object(Bucket="bucket-one", Key="k")["Body"].read(),
}
# the stack's side only: time app serve for prepared requests (what the worker sends)
captured = {}
orig = inprocess.InProcessDispatch.serve


def cap(self, method, url, headers, body):
    captured.setdefault(current[0], (method, url, headers, body))
    return orig(self, method, url, headers, body)


inprocess.InProcessDispatch.serve = cap
current = [""]
for name, call in ops.items():
    current[0] = name
    call(0)
inprocess.InProcessDispatch.serve = orig
disp = [
    h
    for h in __import__("botocore.handlers").handlers.BUILTIN_HANDLERS
    if isinstance(getattr(h[1], "__self__", None), inprocess.InProcessDispatch)
][0][1].__self__
for name, (m, u, h, b) in captured.items():
    if name == "put":
        import json

        bodies = [
            json.dumps({**json.loads(b), "Item": {**item, "imageId": {"S": f"y{i}"}}}).encode()
            for i in range(N)
        ]
    else:
        bodies = [b] * N
    best = []
    k = N // 10
    for c in range(10):
        t = time.process_time()
        for i in range(c * k, (c + 1) * k):
            disp.serve(m, u, h, bodies[i])
        best.append((time.process_time() - t) / k * 1e6)
    best.sort()
    print(f"{name}: {best[0]:.0f}/{best[len(best) // 2]:.0f} us")
if os.environ.get("PROF"):
    m, u, h, b = captured[os.environ["PROF"]]
    import json

    bodies = (
        [
            json.dumps({**json.loads(b), "Item": {**item, "imageId": {"S": f"z{i}"}}}).encode()
            for i in range(N)
        ]
        if os.environ["PROF"] == "put"
        else [b] * N
    )
    cProfile.run("for i in range(N): disp.serve(m, u, h, bodies[i])", "/tmp/mb/prof")
    pstats.Stats("/tmp/mb/prof").sort_stats("tottime").print_stats(int(os.environ.get("TOP", "25")))
