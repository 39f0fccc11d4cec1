"""The local stack's pure parts: reading bodies, reading what a request is signed for, the
S3 event's shape, telling deploys from reads, and SigV4 as botocore signs it."""

from __future__ import annotations

import datetime as dt
import io
import subprocess
import sys
from urllib.parse import urlsplit

import pytest

from imgup.local.catalog import Catalog, change_of
from imgup.local.notifications import CreatedObject, Sequencer, s3_event
from imgup.local.presigned import PresignedPut
from imgup.local.wire import BodyError, declared_length, read_body, scope_of


def environ(**items) -> dict:
    base = {"REQUEST_METHOD": "GET", "PATH_INFO": "/", "QUERY_STRING": "", "wsgi.input": io.BytesIO(b"")}
    return {**base, **items}


@pytest.mark.parametrize("raw", ["abc", "-1", "1e3", "1.0", "0x10", "²", "9" * 20, "1, 1"])
def test_a_content_length_that_is_not_a_count_of_bytes_is_refused(raw) -> None:
    with pytest.raises(BodyError) as raised:
        declared_length(environ(CONTENT_LENGTH=raw))
    assert raised.value.kind == "invalid-length"


def test_a_body_is_read_whole_and_never_past_its_limit() -> None:
    assert read_body(environ(CONTENT_LENGTH="3", **{"wsgi.input": io.BytesIO(b"abcdef")}), 10) == b"abc"
    assert read_body(environ(), 10) == b""
    with pytest.raises(BodyError) as too_large:
        read_body(environ(CONTENT_LENGTH="11", **{"wsgi.input": io.BytesIO(b"x" * 11)}), 10)
    assert too_large.value.kind == "too-large"
    with pytest.raises(BodyError) as short:
        read_body(environ(CONTENT_LENGTH="5", **{"wsgi.input": io.BytesIO(b"ab")}), 10)
    assert short.value.kind == "incomplete"
    chunked = environ(**{"wsgi.input": io.BytesIO(b"x" * 20), "wsgi.input_terminated": True})
    with pytest.raises(BodyError):
        read_body(chunked, 10)


def test_the_scope_comes_from_the_authorization_header_or_the_presigned_query() -> None:
    header = "AWS4-HMAC-SHA256 Credential=AK/20260101/eu-west-1/dynamodb/aws4_request, SignedHeaders=host"
    assert scope_of(environ(HTTP_AUTHORIZATION=header)).region == "eu-west-1"
    query = "X-Amz-Credential=AK%2F20260101%2Fus-east-2%2Fs3%2Faws4_request&X-Amz-Signature=00"
    found = scope_of(environ(QUERY_STRING=query))
    assert (found.access_key, found.region, found.service) == ("AK", "us-east-2", "s3")
    assert scope_of(environ()) is None


def test_an_s3_event_encodes_the_key_and_names_the_version_only_when_there_is_one() -> None:
    created = CreatedObject("b", "images/x/a b+é.png", "ObjectCreated:Put", 12, '"abc"', "v1")
    record = s3_event("us-east-1", created, "0001")["Records"][0]
    assert record["eventName"] == "ObjectCreated:Put" and record["eventSource"] == "aws:s3"
    assert record["s3"]["object"] == {
        "key": "images/x/a+b%2B%C3%A9.png",
        "size": 12,
        "eTag": "abc",
        "versionId": "v1",
        "sequencer": "0001",
    }
    unversioned = CreatedObject("b", "k", "ObjectCreated:Put", 1, '"e"', None)
    assert "versionId" not in s3_event("us-east-1", unversioned, "0002")["Records"][0]["s3"]["object"]


def test_sequencers_sort_in_the_order_they_were_taken() -> None:
    sequencer = Sequencer()
    taken = [sequencer.next() for _ in range(1000)]
    assert taken == sorted(taken) and len(set(taken)) == 1000


def _signed(service: str, method: str, **items) -> dict:
    auth = f"AWS4-HMAC-SHA256 Credential=AK/20260101/us-east-1/{service}/aws4_request, SignedHeaders=host"
    return environ(REQUEST_METHOD=method, HTTP_AUTHORIZATION=auth, **items)


def test_deploys_are_told_from_reads() -> None:
    form = "application/x-www-form-urlencoded"

    def cfn(action: str) -> dict:
        body = io.BytesIO(f"Action={action}&Version=2010-05-15".encode())
        return _signed("cloudformation", "POST", CONTENT_TYPE=form, **{"wsgi.input": body})

    assert change_of(cfn("DescribeStacks")) is None
    assert change_of(cfn("GetTemplate")) is None
    executed = change_of(cfn("ExecuteChangeSet"))
    assert executed is not None and executed.deployed_stack and executed.region == "us-east-1"
    assert not change_of(cfn("CreateChangeSet")).deployed_stack
    assert change_of(_signed("apigateway", "GET", PATH_INFO="/restapis")) is None
    assert change_of(_signed("apigateway", "POST", PATH_INFO="/apikeys")) is not None
    assert change_of(_signed("lambda", "POST", PATH_INFO="/2015-03-31/functions/f/invocations")) is None
    assert change_of(_signed("s3", "PUT", PATH_INFO="/bucket/key")) is None
    assert change_of(_signed("dynamodb", "POST")) is None


def test_the_catalog_loads_once_until_its_region_is_forgotten() -> None:
    catalog = Catalog()
    loads: list[str] = []

    def load() -> str:
        loads.append("x")
        return f"v{len(loads)}"

    assert [catalog.get("us-east-1", "k", load) for _ in range(5)] == ["v1"] * 5
    catalog.forget("eu-west-1")
    assert catalog.get("us-east-1", "k", load) == "v1"
    catalog.forget("us-east-1")
    assert catalog.get("us-east-1", "k", load) == "v2"
    catalog.forget(None)
    assert catalog.get("us-east-1", "k", load) == "v3"


def test_a_change_to_api_gateway_or_lambda_forgets_only_what_it_owns() -> None:
    catalog = Catalog()
    loads: list[object] = []
    keys = [("routes", "api"), ("keys", "api", "prod"), ("function", "f"), "buckets", "wiring"]

    def get_all(region: str = "us-east-1") -> None:
        for key in keys:
            catalog.get(region, key, lambda key=key: loads.append(key))

    get_all()
    get_all("eu-west-1")
    loads.clear()
    catalog.forget("us-east-1", "apigateway")  # e.g. the API key a deploy creates last
    get_all()
    assert loads == [("routes", "api"), ("keys", "api", "prod")]
    loads.clear()
    catalog.forget("us-east-1", "lambda")
    get_all()
    assert loads == [("function", "f")]
    loads.clear()
    catalog.forget(None, "lambda")
    get_all("eu-west-1")
    assert loads == [("function", "f")]
    loads.clear()
    catalog.forget("us-east-1", "cloudformation")  # a stack creates APIs, functions, buckets
    get_all()
    get_all("eu-west-1")
    assert loads == keys


def test_a_url_botocore_presigns_passes_and_any_change_to_it_fails() -> None:
    import boto3
    from botocore.config import Config

    from imgup.aws import LOCAL_CREDENTIALS

    s3 = boto3.client(
        "s3",
        endpoint_url="http://127.0.0.1:4566",
        region_name="us-east-1",
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
        **LOCAL_CREDENTIALS,
    )
    url = s3.generate_presigned_url(
        "put_object",
        Params={"Bucket": "b", "Key": "images/i/a b+c ü.png", "ContentType": "image/png", "ContentLength": 3},
        ExpiresIn=300,
    )
    parts = urlsplit(url)

    def request(**changes) -> dict:
        items = {
            "REQUEST_METHOD": "PUT",
            "REQUEST_URI": f"{parts.path}?{parts.query}",
            "QUERY_STRING": parts.query,
            "HTTP_HOST": parts.netloc,
            "CONTENT_TYPE": "image/png",
            "CONTENT_LENGTH": "3",
            "wsgi.input": io.BytesIO(b"abc"),
        }
        return {**items, **changes}

    checker = PresignedPut()
    assert checker.check(request()) is None
    for lie in ({"CONTENT_TYPE": "image/gif"}, {"CONTENT_LENGTH": "4"}, {"HTTP_HOST": "127.0.0.1:1"}):
        assert checker.check(request(**lie))[0].startswith("403"), lie
    later = PresignedPut(now=lambda: dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=301))
    status, _, body = later.check(request())
    assert status.startswith("403") and b"Request has expired" in body


def test_the_stack_lets_moto_forget_an_s3_object_it_no_longer_holds() -> None:
    # In a subprocess: the change applies to the whole process that makes it.
    program = """
import gc, weakref
from imgup.local.server import untrack_moto_models
untrack_moto_models()
from moto.s3.models import FakeKey
key = FakeKey("k", b"x" * 100000, account_id="123456789012", region_name="us-east-1")
ref = weakref.ref(key)
del key
gc.collect()
assert ref() is None, "moto still holds the object"
assert FakeKey.instances_tracked == []
"""
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_a_stack_that_ended_counts_as_stopped_before_its_parent_reaps_it() -> None:
    # A stack whose starter has exited is a child of init, which may reap it only now and
    # then: `imgup local stop` waited for that (1.3 s per stop here).
    import time
    from pathlib import Path

    from imgup.local import control

    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import subprocess, sys, time\n"
            "child = subprocess.Popen([sys.executable, '-c', 'pass'])\n"
            "print(child.pid, flush=True)\n"
            "time.sleep(30)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert parent.stdout is not None
        pid = int(parent.stdout.readline())
        stat = Path(f"/proc/{pid}/stat")
        for _ in range(200):
            if stat.read_text().rpartition(")")[2].split()[0] == "Z":
                break
            time.sleep(0.02)
        else:
            raise AssertionError("the child never ended")
        assert not control._pid_alive(pid)
        assert control._pid_alive(parent.pid)
    finally:
        parent.kill()
        parent.communicate()


class _Runner:
    """A LambdaRunner's face: every function exists, and invocations are recorded."""

    def __init__(self) -> None:
        self.invoked: list[object] = []

    def function(self, region: str, name: str) -> str:
        return name

    def invoke(self, region: str, function: object, event: object) -> dict:
        self.invoked.append(event)
        return {}


def _invoke_async(invoker: object, event: bytes) -> tuple:
    environ = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/2015-03-31/functions/thumbnail/invocations",
        "HTTP_X_AMZ_INVOCATION_TYPE": "Event",
        "CONTENT_LENGTH": str(len(event)),
        "wsgi.input": io.BytesIO(event),
    }
    return invoker(environ, "thumbnail")  # type: ignore[operator]


def test_background_invocations_wait_until_no_request_is_being_served() -> None:
    import time

    from imgup.local.invoke import Invoker
    from imgup.local.wire import Foreground

    runner, foreground = _Runner(), Foreground()
    invoker = Invoker(runner, quiet_for=foreground.quiet_for)  # type: ignore[arg-type]
    try:
        with foreground.serving():  # an upload's request from outside
            assert _invoke_async(invoker, b'{"imageId": "a"}')[0].startswith("202")
            time.sleep(0.3)
            assert runner.invoked == [] and invoker.pending == 1
        for _ in range(200):
            if not invoker.pending:
                break
            time.sleep(0.01)
        assert runner.invoked == [{"imageId": "a"}] and invoker.pending == 0
    finally:
        invoker.shutdown()


def test_background_invocations_are_not_put_off_for_ever_by_a_busy_stack() -> None:
    import time

    from imgup.local.invoke import Invoker

    runner = _Runner()
    invoker = Invoker(runner, quiet_for=lambda: 0.0, max_wait=0.2)  # type: ignore[arg-type]
    try:
        _invoke_async(invoker, b'{"imageId": "b"}')
        for _ in range(300):
            if runner.invoked:
                break
            time.sleep(0.01)
        assert runner.invoked == [{"imageId": "b"}]
    finally:
        invoker.shutdown()


# --- S3 events wait for a quiet moment, as asynchronous invocations do -----------------------


def _router(quiet_for: object, max_wait: float = 30.0, workers: int = 4) -> tuple:
    from imgup.local.notifications import NotificationRouter, Subscription

    runner = _Runner()
    router = NotificationRouter(
        runner,  # type: ignore[arg-type]
        Catalog(),
        workers=workers,
        quiet_for=quiet_for,  # type: ignore[arg-type]
        max_wait=max_wait,
    )
    wired = {"bucket": [Subscription("complete", ("s3:ObjectCreated:*",), "images/", "")]}
    router.wiring = lambda region: wired  # type: ignore[method-assign]
    return router, runner


def _wait_until(condition: object, seconds: float = 5.0) -> None:
    import time

    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:  # type: ignore[operator]
        time.sleep(0.01)


def test_s3_events_wait_until_no_request_is_being_served_and_keep_the_time_of_the_write() -> None:
    import time

    from imgup.local.wire import Foreground

    foreground = Foreground()
    router, runner = _router(foreground.quiet_for)
    try:
        with foreground.serving():  # an upload's request from outside
            written = dt.datetime.now(dt.timezone.utc)
            router.object_created(
                "us-east-1", CreatedObject("bucket", "images/a.png", "ObjectCreated:Put", 3)
            )
            router.object_created(
                "us-east-1", CreatedObject("bucket", "thumbnails/a.webp", "ObjectCreated:Put", 3)
            )
            time.sleep(0.3)
            assert runner.invoked == [] and router.pending == 1  # the one nobody subscribed to is done
        _wait_until(lambda: router.pending == 0)
        (event,) = runner.invoked
        record = event["Records"][0]  # type: ignore[index]
        assert record["s3"]["object"]["key"] == "images/a.png"
        stamp = dt.datetime.strptime(record["eventTime"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(
            tzinfo=dt.timezone.utc
        )
        assert abs((stamp - written).total_seconds()) < 0.1  # when it was written, not delivered
    finally:
        router.shutdown()


def test_s3_events_on_a_stack_that_is_never_quiet_are_late_by_at_most_max_wait_from_their_write() -> None:
    import time

    router, runner = _router(lambda: 0.0, max_wait=0.4, workers=1)
    try:
        started = time.monotonic()
        for name in ("a", "b", "c"):  # one worker: b and c wait behind a
            router.object_created(
                "us-east-1", CreatedObject("bucket", f"images/{name}", "ObjectCreated:Put", 3)
            )
        _wait_until(lambda: router.pending == 0)
        took = time.monotonic() - started
        assert len(runner.invoked) == 3
        assert 0.35 < took < 1.0  # not 3 x 0.4 s: each waited from its own write
    finally:
        router.shutdown()


def test_warming_builds_the_clients_that_the_handlers_then_find_built() -> None:
    from imgup.backend import settings
    from imgup.local.lambdas import FunctionConfig, LambdaRunner

    built: list[tuple[str, str]] = []
    runner = LambdaRunner(
        "http://127.0.0.1:9", lambda service, region: built.append((service, region)), Catalog()
    )  # type: ignore[arg-type]
    settings.clear_client_cache()
    try:
        runner.warm("eu-west-1")
        function = FunctionConfig(
            "complete", "arn", "imgup_backend.handlers.complete", {"TABLE_NAME": "t"}, 3
        )
        assert (settings.clients.cache_info().misses, settings.lambda_client.cache_info().misses) == (1, 1)
        connection = settings.Connection.from_environ(runner.environ_for(function, "eu-west-1"))
        settings.clients(connection)
        settings.lambda_client(connection)
        # what a handler of that function asks for is found, not built again
        assert (settings.clients.cache_info().misses, settings.lambda_client.cache_info().misses) == (1, 1)
        assert {service for service, _ in built} == {
            "apigateway",
            "lambda",
            "cloudformation",
            "s3",
            "dynamodb",
        }
    finally:
        settings.clear_client_cache()
