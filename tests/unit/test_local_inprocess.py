"""The local stack's in-process boto3 calls: labelled with their scope, not signed."""

from __future__ import annotations

import re
from typing import Any

import boto3
import pytest
from botocore import auth
from botocore.awsrequest import AWSResponse
from botocore.config import Config

from imgup.local import inprocess

LOCAL = "http://127.0.0.1:1"
ELSEWHERE = "http://127.0.0.1:2"
ZEROS = "0" * 64


class _Answer:
    def stream(self, amt: int = 65536, decode_content: bool | None = None) -> Any:
        yield b""


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    for version in ("v4", "s3v4"):
        monkeypatch.setitem(auth.AUTH_TYPE_MAPS, version, auth.AUTH_TYPE_MAPS[version])
    inprocess._skip_signing_for(LOCAL)
    captured: list[Any] = []

    def capture(request: Any, **kwargs: Any) -> AWSResponse:
        captured.append(request)
        return AWSResponse(request.url, 200, {}, _Answer())

    monkeypatch.setattr(_Sent, "hook", staticmethod(capture))
    return captured


class _Sent:
    hook: Any = None


def client(service: str, endpoint: str) -> Any:
    made = boto3.session.Session(
        aws_access_key_id="AKIDLOCAL", aws_secret_access_key="secret", region_name="eu-west-1"
    ).client(
        service, endpoint_url=endpoint, config=Config(signature_version="s3v4" if service == "s3" else None)
    )
    made.meta.events.register("before-send", _Sent.hook)
    return made


def authorization(sent: list[Any], service: str, endpoint: str) -> str:
    """The Authorization header of one call of ``service`` to ``endpoint``."""
    call = client(service, endpoint)
    if service == "s3":
        call.put_object(Bucket="b", Key="k", Body=b"data")
    else:
        call.list_tables()
    header = sent[-1].headers["Authorization"]
    return header.decode() if isinstance(header, bytes) else header


@pytest.mark.parametrize("service", ["s3", "dynamodb"])
def test_a_request_to_the_stack_itself_carries_its_scope_and_no_signature(sent, service: str) -> None:
    header = authorization(sent, service, LOCAL)
    assert "Credential=AKIDLOCAL/" in header and f"/eu-west-1/{service}/aws4_request" in header
    assert header.endswith(f"Signature={ZEROS}")
    assert len(sent[-1].headers["X-Amz-Date"]) == len("20261202T010203Z")


@pytest.mark.parametrize("service", ["s3", "dynamodb"])
def test_a_request_elsewhere_is_signed_as_botocore_signs_it(sent, service: str) -> None:
    signature = authorization(sent, service, ELSEWHERE).rpartition("Signature=")[2]
    assert len(signature) == 64 and signature != ZEROS


def test_a_presigned_url_of_the_stack_is_signed_for_real(sent) -> None:
    url = client("s3", LOCAL).generate_presigned_url(
        "put_object", Params={"Bucket": "b", "Key": "k"}, ExpiresIn=60
    )
    signature = url.rpartition("X-Amz-Signature=")[2]
    assert len(signature) == 64 and signature != ZEROS


# --- moto's handlers called without its Flask application ------------------------------------


def _plain(answer: Any, name: str) -> Any:
    """An answer without what differs from call to call (request ids, dates, version ids, the
    names of the table and bucket)."""
    if isinstance(answer, dict):
        return {
            ("<name>" if k == name else k): "<varies>"
            if k in {"VersionId", "LastModified"}
            else _plain(v, name)
            for k, v in answer.items()
            if k not in {"ResponseMetadata", "TableDescription", "Location"}
        }
    if isinstance(answer, list):
        return [_plain(v, name) for v in answer]
    if hasattr(answer, "read"):
        return answer.read().hex()
    if isinstance(answer, str):  # a message may name the table
        return re.sub(rf"\b{name}\b", "<name>", answer)
    return answer


def _scenario(clients: Any, name: str) -> list[Any]:
    """What a series of the handlers' kinds of calls answer, errors included."""
    from botocore.exceptions import ClientError

    db, s3 = clients("dynamodb", "us-east-1"), clients("s3", "us-east-1")
    data = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 40
    key = {"imageId": {"S": "one"}}
    item = {**key, "status": {"S": "pending"}, "size": {"N": "3"}, "tags": {"M": {"a": {"S": "b"}}}}
    calls = [
        lambda: db.create_table(
            TableName=name,
            KeySchema=[{"AttributeName": "imageId", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "imageId", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        ),
        lambda: db.put_item(TableName=name, Item=item),
        lambda: db.get_item(TableName=name, Key=key, ConsistentRead=True),
        lambda: db.put_item(
            TableName=name,
            Item=item,
            ConditionExpression="attribute_not_exists(imageId)",
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        ),
        lambda: db.update_item(
            TableName=name,
            Key=key,
            UpdateExpression="SET #s = :r",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={":r": {"S": "ready"}},
            ReturnValues="ALL_NEW",
        ),
        lambda: db.query(
            TableName=name,
            KeyConditionExpression="imageId = :i",
            ExpressionAttributeValues={":i": key["imageId"]},
        ),
        lambda: db.get_item(TableName=name + "-missing", Key=key),
        lambda: db.delete_item(TableName=name, Key=key, ReturnValues="ALL_OLD"),
        lambda: s3.create_bucket(Bucket=name),
        lambda: s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"}),
        lambda: s3.put_object(
            Bucket=name,
            Key="a/b c.png",
            Body=data,
            ContentType="image/png",
            ChecksumAlgorithm="SHA256",
            Metadata={"my_key": "v"},
        ),
        lambda: s3.head_object(Bucket=name, Key="a/b c.png", ChecksumMode="ENABLED"),
        lambda: s3.get_object(Bucket=name, Key="a/b c.png"),
        lambda: s3.get_object(Bucket=name, Key="a/b c.png", Range="bytes=0-99"),
        lambda: s3.get_object(Bucket=name, Key="a/b c.png", IfMatch='"not-the-etag"'),
        lambda: s3.get_object(Bucket=name, Key="missing"),
        lambda: s3.head_object(Bucket=name, Key="missing"),
        lambda: s3.delete_object(Bucket=name, Key="a/b c.png"),
        lambda: s3.list_object_versions(Bucket=name, Prefix="a/"),
        lambda: db.batch_write_item(
            RequestItems={
                name: [{"PutRequest": {"Item": {**item, "imageId": {"S": f"b{n}"}}}} for n in range(3)]
            }
        ),
        lambda: db.batch_get_item(
            RequestItems={name: {"Keys": [{"imageId": {"S": f"b{n}"}} for n in range(4)]}}
        ),
        lambda: db.put_item(TableName=name, Item={**item, "raw": {"B": b"\x00\xff"}, "raws": {"BS": [b"1"]}}),
        lambda: db.get_item(
            TableName=name,
            Key=key,
            ProjectionExpression="#r, raws, tags",
            ExpressionAttributeNames={"#r": "raw"},
        ),
        lambda: db.query(
            TableName=name,
            IndexName="missing",
            KeyConditionExpression="imageId = :i",
            ExpressionAttributeValues={":i": key["imageId"]},
        ),
        lambda: db.scan(
            TableName=name,
            FilterExpression="#s = :p",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={":p": {"S": "pending"}},
            Select="COUNT",
        ),
    ]
    answers: list[Any] = []
    for call in calls:
        try:
            answers.append(["ok", _plain(call(), name)])
        except ClientError as exc:
            error, rest = exc.response["Error"], {k: v for k, v in exc.response.items() if k != "Error"}
            status = exc.response["ResponseMetadata"]["HTTPStatusCode"]
            answers.append(["error", error.get("Code"), status, _plain(rest, name)])
    return answers


def compare_direct_and_flask() -> dict[str, Any]:
    """Run the scenario through a local stack application in this process (its endpoint is
    never listened on: every call is answered in-process): as it answers; with every call
    through botocore's whole request path (``before-send``); and then also through moto's
    Flask application. Run in a process of its own: the application patches moto and
    botocore for the whole process."""
    from botocore.handlers import BUILTIN_HANDLERS

    from imgup.local import inprocess, server

    endpoint = "http://127.0.0.1:9"
    server.LocalStackApp(endpoint)  # installs its hooks
    counts = {"beforeCall": 0, "direct": 0, "dynamodbSetUp": 0}
    call_moto = server._call_moto
    dynamodb_handler = server.fastpaths.dynamodb_handler

    def counted_dynamodb_handler(environ: Any) -> Any:
        handler = dynamodb_handler(environ)
        counts["dynamodbSetUp"] += handler is not None
        return handler

    (event, before_call), *_ = [
        h
        for h in BUILTIN_HANDLERS
        if h[0] == "before-call" and isinstance(getattr(h[1], "__self__", None), inprocess.InProcessDispatch)
    ]

    def counted_before_call(**kwargs: Any) -> Any:
        answer = before_call(**kwargs)
        counts["beforeCall"] += answer is not None
        return answer

    def counted_call_moto(*args: Any) -> Any:
        counts["direct"] += 1
        return call_moto(*args)

    BUILTIN_HANDLERS[BUILTIN_HANDLERS.index((event, before_call))] = (event, counted_before_call)
    server._call_moto = counted_call_moto  # type: ignore[assignment]
    server.fastpaths.dynamodb_handler = counted_dynamodb_handler  # type: ignore[assignment]
    fast = _scenario(inprocess.Clients(endpoint), "fast")
    BUILTIN_HANDLERS.remove((event, counted_before_call))
    sent = _scenario(inprocess.Clients(endpoint), "sent")
    server._direct_callback = lambda environ: None  # type: ignore[assignment]
    through_flask = _scenario(inprocess.Clients(endpoint), "flask")
    return {"fast": fast, "sent": sent, "flask": through_flask, **counts}


def in_own_process(name: str) -> Any:
    """What this module's function ``name`` returns, run in a Python process of its own (the
    local stack's application patches moto and botocore for its whole process)."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    code = (
        f"import json; from tests.unit.test_local_inprocess import {name} as c; "
        "print(json.dumps(c(), default=str))"
    )
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


def test_calls_answered_by_motos_handlers_directly_are_answered_as_through_its_flask_app() -> None:
    found = in_own_process(compare_direct_and_flask.__name__)

    assert found["direct"] >= 30  # all but the bucket's own settings, in both first runs
    assert found["beforeCall"] >= 14  # DynamoDB and the S3 reads, in the first run
    # moto's DynamoDB handler set up from the environ, in the first two runs, for all but the
    # call that sends binary values (moto parses that one: base64 becomes bytes)
    assert found["dynamodbSetUp"] == 2 * 13
    assert found["fast"] == found["sent"] == found["flask"]
    direct = found["fast"]
    errors = [answer for answer in direct if answer[0] == "error"]
    assert [(e[1], e[2]) for e in errors] == [
        ("ConditionalCheckFailedException", 400),
        ("ResourceNotFoundException", 400),
        ("PreconditionFailed", 412),
        ("NoSuchKey", 404),
        ("404", 404),
        ("ResourceNotFoundException", 400),
    ]
    assert errors[0][3]["Item"]["status"] == {"S": "pending"}
    head, whole, ranged = direct[11][1], direct[12][1], direct[13][1]
    assert head["ContentLength"] == 10248 and head["Metadata"] == {"my_key": "v"} and head["ChecksumSHA256"]
    body = bytes.fromhex(whole["Body"])
    assert body.startswith(b"\x89PNG") and len(body) == 10248
    assert ranged["ContentRange"] == "bytes 0-99/10248" and bytes.fromhex(ranged["Body"]) == body[:100]
    assert len(direct[20][1]["Responses"]["<name>"]) == 3
    assert direct[22][1]["Item"]["raws"] == {"BS": ["b'1'"]} and direct[24][1]["Count"] == 4


_REQUEST_IDS = {"x-amz-request-id", "x-amz-id-2", "x-amzn-requestid"}


def _raw(answer: tuple[str, list[tuple[str, str]], list[bytes]]) -> list[Any]:
    """An answer as it goes on the wire, but for its random request ids."""
    status, headers, body = answer
    kept = sorted((name.lower(), value) for name, value in headers if name.lower() not in _REQUEST_IDS)
    return [status, kept, b"".join(body).hex()]


def compare_object_reads() -> dict[str, Any]:
    """Every S3 object GET of a scenario, answered twice from the same environ: by
    ``fastpaths.s3_object_get`` (when it takes the call) and by moto's own handler; the
    client gets moto's. Run in a process of its own, as above."""
    import copy
    import io
    import json

    from botocore.exceptions import ClientError

    from imgup.local import fastpaths, server

    endpoint = "http://127.0.0.1:9"
    server.LocalStackApp(endpoint)
    compared: list[dict[str, Any]] = []
    moto_call = server._s3_object_call

    def through_moto(environ: dict[str, Any]) -> Any:
        from moto.s3.responses import S3Response

        return server._with_request(S3Response.key_dispatch, environ)

    def both(environ: dict[str, Any]) -> Any:
        if environ["REQUEST_METHOD"] != "GET":
            return moto_call(environ)
        body = environ["wsgi.input"].getvalue()
        mine = {**copy.copy(environ), "wsgi.input": io.BytesIO(body)}
        fast = fastpaths.s3_object_get(mine)
        theirs = server._call_moto(through_moto, environ)
        compared.append(
            {
                "path": environ["PATH_INFO"],
                "fast": None if fast is None else _raw(server._call_moto(lambda e: fast, mine)),
                "moto": _raw(theirs),
            }
        )
        return through_moto({**environ, "wsgi.input": io.BytesIO(body)})

    server._s3_object_call = both  # type: ignore[assignment]
    s3 = inprocess.Clients(endpoint)("s3", "us-east-1")
    name, data = "reads", b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 40
    s3.create_bucket(Bucket=name)
    s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    s3.put_bucket_encryption(
        Bucket=name,
        ServerSideEncryptionConfiguration={
            "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
        },
    )
    first = s3.put_object(Bucket=name, Key="images/a.png", Body=data[:100], ContentType="image/png")
    second = s3.put_object(
        Bucket=name,
        Key="images/a.png",
        Body=data,
        ContentType="image/png",
        ChecksumAlgorithm="SHA256",
        Metadata={"my_key": "v"},
        Tagging="a=b",
        CacheControl="no-cache",
    )
    s3.put_object(Bucket=name, Key="images/gone.png", Body=b"x")
    s3.delete_object(Bucket=name, Key="images/gone.png")
    s3.put_object(Bucket=name, Key="images/b c.png", Body=b"spaced")
    reads = [
        dict(Key="images/a.png"),
        dict(Key="images/a.png", ChecksumMode="ENABLED"),
        dict(Key="images/a.png", VersionId=first["VersionId"]),
        dict(Key="images/a.png", VersionId=first["VersionId"], ChecksumMode="ENABLED"),
        dict(Key="images/a.png", Range="bytes=0-9"),
        dict(Key="images/a.png", IfNoneMatch=second["ETag"]),
        dict(Key="images/a.png", ResponseContentType="text/plain"),
        dict(Key="images/a.png", VersionId="no-such-version"),
        dict(Key="images/missing.png"),
        dict(Key="images/gone.png"),
        dict(Key="images/b c.png"),
    ]
    outcomes = []
    for read in reads:
        try:
            outcomes.append(["ok", _plain(s3.get_object(Bucket=name, **read), name)])
        except ClientError as exc:
            outcomes.append(["error", exc.response["Error"]["Code"]])
    s3.put_bucket_policy(
        Bucket=name,
        Policy=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Deny",
                        "Principal": "*",
                        "Action": "s3:GetObject",
                        "Resource": f"arn:aws:s3:::{name}/*",
                    }
                ],
            }
        ),
    )
    try:
        s3.get_object(Bucket=name, Key="images/a.png")
        outcomes.append(["ok"])
    except ClientError as exc:
        outcomes.append(["error", exc.response["Error"]["Code"]])
    return {"compared": compared, "outcomes": outcomes}


def test_a_plain_object_read_is_answered_from_motos_backend_as_moto_answers_it() -> None:
    found = in_own_process(compare_object_reads.__name__)
    compared = found["compared"]

    assert len(compared) == 12
    taken = [c for c in compared if c["fast"] is not None]
    # the four plain reads (current or older version, checksum asked for or not); the range,
    # the condition, the header override, the missing key or version, the delete marker,
    # the encoded key and the read a bucket policy denies are moto's
    assert len(taken) == 4
    for read in taken:
        assert read["fast"] == read["moto"]
    # boto3 asks for the checksum of every read (ChecksumMode or not): each version's own
    current, older = dict(compared[0]["moto"][1]), dict(compared[2]["moto"][1])
    assert current["x-amz-checksum-sha256"] and older["x-amz-checksum-crc32"]
    assert current["x-amz-meta-my_key"] == "v" and current["x-amz-server-side-encryption"] == "AES256"
    assert current["x-amz-tagging-count"] == "1" and current["cache-control"] == "no-cache"
    assert older["content-length"] == "100" and older["x-amz-version-id"] != current["x-amz-version-id"]
    assert [c["moto"][0].split()[0] for c in compared[4:]] == [
        "206",
        "304",
        "200",
        "404",
        "404",
        "404",
        "200",
        "403",
    ]
    assert dict(compared[6]["moto"][1])["content-type"] == "text/plain"
    outcomes = found["outcomes"]
    assert [o[0] for o in outcomes[:5]] == ["ok"] * 5
    assert outcomes[5] == ["error", "304"] and outcomes[-1] == ["error", "403"]
    assert (
        bytes.fromhex(outcomes[0][1]["Body"]).startswith(b"\x89PNG")
        and outcomes[0][1]["ContentLength"] == 10248
    )
