"""The local stack's process: moto and the API Gateway emulator on one 127.0.0.1 port.

    /_imgup/health            200 while the process serves, with counts of what it served
    /_api/<region>/<api>/...  the API Gateway emulator (imgup.local.apigateway)
    presigned PUTs            checked as S3 checks them (imgup.local.presigned), then moto
    everything else           moto's server (S3, DynamoDB, CloudFormation, Lambda, ...)

Successful object-creating S3 requests are reported to the NotificationRouter, which runs the
subscribed function as the bucket's notification would. Requests that change a stack, an
API or a function make the catalog forget what they may have changed of the region's
deployed configuration (and, for a stack, put the bucket settings moto's CloudFormation
skipped). The stack's own boto3 calls (handlers, look-ups) reach this application
in-process (imgup.local.inprocess), not over HTTP. Run as
``python -P -m imgup.local.server --state-dir DIR``: it binds an ephemeral port, writes
``DIR/local.json`` (pid, port, endpointUrl) once it serves, logs to ``DIR/local.log``, and
stops cleanly on SIGTERM or SIGINT. ``imgup.local.control`` starts and stops it.
"""

from __future__ import annotations

import argparse
import gc
import io
import json
import logging
import os
import re
import signal
import sys
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from . import GC_THRESHOLDS, HEALTH_PATH, LOG_FILE, STATE_FILE, fastpaths  # shared with control
from .apigateway import PREFIX, ApiGatewayEmulator
from .catalog import Catalog, Change, change_of
from .inprocess import Clients, InProcessDispatch
from .invoke import Invoker, invocation
from .lambdas import InProcessHandlers, LambdaRunner
from .notifications import CreatedObject, NotificationRouter
from .presigned import PresignedPut, is_presigned_put, tidy_put_answer
from .provision import apply_bucket_settings
from .wire import (
    BODY_ERROR_CODES,
    MAX_OBJECT_BYTES,
    Answer,
    BodyError,
    Foreground,
    Tally,
    aws_error,
    declared_length,
    known_regions,
    read_body,
    respond,
    scope_of,
    status_line,
)
from .worker import HandlersProcess, handlers_process_wanted

READ_TIMEOUT_ENV = "IMGUP_LOCAL_READ_TIMEOUT"
READ_TIMEOUT = 20.0  # seconds a request may leave its socket silent (S3's RequestTimeout)
INTERNAL_ERROR = "We encountered an internal error. Please try again."
PREFILL_AFTER = 0.3
"""Seconds without another change to deployed configuration before the catalog is filled
again (a deploy is a burst of changes; the last, its API key, comes just before it ends)."""
_ETAG = re.compile(rb"<ETag>([^<]*)</ETag>")
log = logging.getLogger("imgup.local")


def _created(environ: dict[str, Any]) -> tuple[str, str, str] | None:
    """(bucket, key, event name) when the request creates an S3 object, else None."""
    method = environ.get("REQUEST_METHOD")
    if method not in {"PUT", "POST"}:
        return None
    # werkzeug decoded the path and carries its UTF-8 bytes as latin-1
    path = environ.get("PATH_INFO", "").encode("latin-1").decode("utf-8", "replace")
    bucket, _, key = path.lstrip("/").partition("/")
    if not bucket or not key:
        return None
    query = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
    if method == "PUT" and not _SUBRESOURCES & set(query):
        name = "ObjectCreated:Copy" if environ.get("HTTP_X_AMZ_COPY_SOURCE") else "ObjectCreated:Put"
        return bucket, key, name
    if method == "POST" and "uploadId" in query:
        return bucket, key, "ObjectCreated:CompleteMultipartUpload"
    return None


_SUBRESOURCES = {"partNumber", "uploadId", "tagging", "acl", "retention", "legal-hold"}


def untrack_moto_models() -> None:
    """Let moto's objects go when moto is done with them.

    moto appends every model object it ever creates (each S3 object version, each deep copy
    of all of them that ``ListObjectVersions`` makes, each DynamoDB item) to a list on its
    class, for its dashboard and its test-reset; nothing ever removes them. In the local
    stack, a process that runs for hours, that list is every byte ever uploaded: uploading
    and deleting 1,000 images five times grew it past 4 GB. The stack uses neither the
    dashboard nor the reset, so new objects are no longer listed."""
    from moto.core.common_models import BaseModel

    def new(cls: type, *args: Any, **kwargs: Any) -> Any:
        return super(BaseModel, cls).__new__(cls)  # type: ignore[misc]

    BaseModel.__new__ = new  # type: ignore[method-assign]


class LocalStackApp:
    """The WSGI application of the local stack. It serves requests from outside (werkzeug)
    and, in-process, the boto3 calls of the handlers and of its own look-ups."""

    def __init__(self, endpoint_url: str, handlers_log: str | None = None) -> None:
        """``handlers_log``: the log file of the handlers' own process, when they run in one
        (``imgup.local.worker``)."""
        from moto.server import DomainDispatcherApplication, create_backend_app

        untrack_moto_models()
        fastpaths.install()
        self.moto = DomainDispatcherApplication(create_backend_app)
        self._apps: dict[str, Any] = {}
        self.clients = Clients(endpoint_url)
        self.catalog = Catalog()
        self.dispatch = InProcessDispatch(endpoint_url, self)
        self.handlers = (
            HandlersProcess(endpoint_url, self.dispatch.serve, handlers_log)
            if handlers_process_wanted()
            else InProcessHandlers()
        )
        self.runner = LambdaRunner(endpoint_url, self.clients, self.catalog, self.handlers)
        self.api = ApiGatewayEmulator(self.runner, self.catalog)
        # Background work (S3 events, asynchronous invocations) waits for a quiet moment.
        self.foreground = Foreground()
        self.notifications = NotificationRouter(
            self.runner, self.catalog, quiet_for=self.foreground.quiet_for
        )
        self.invoker = Invoker(self.runner, quiet_for=self.foreground.quiet_for)
        self.presigned = PresignedPut()
        self.requests = {"http": Tally(), "inProcess": Tally(), "api": Tally()}
        self.warmed = Tally()  # deploys after which the handlers' clients were built ahead
        self.prefilled = Tally()  # times the catalog was filled ahead of the first request
        self._prefill_lock = threading.Lock()
        self._prefill_timers: dict[str, threading.Timer] = {}
        self.dispatch.install()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        # No request may take the process down or come back as an HTML page: whatever
        # escapes below becomes an AWS-shaped 500 and a line in the log.
        try:
            return self._route(environ, start_response)
        except Exception:
            log.exception("%s %s failed", environ.get("REQUEST_METHOD"), environ.get("PATH_INFO", "")[:200])
            return respond(aws_error(environ, 500, "InternalError", INTERNAL_ERROR), start_response)

    def _route(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == HEALTH_PATH:
            return respond(("200 OK", {"Content-Type": "application/json"}, self._health()), start_response)
        if environ.get("imgup.in_process"):
            self.requests["inProcess"].add()
            return self._serve(environ, start_response, path)
        self.requests["http"].add()
        with self.foreground.serving():
            return self._serve(environ, start_response, path)

    def _serve(self, environ: dict[str, Any], start_response: Any, path: str) -> Iterable[bytes]:
        if path.startswith(PREFIX):
            self.requests["api"].add()
            return self.api(environ, start_response)
        function = invocation(environ)
        if function is not None:  # Lambda's Invoke: run here, as moto cannot without Docker
            return respond(self.invoker(environ, function), start_response)
        presigned_put = is_presigned_put(environ)
        if presigned_put:
            refusal = self.presigned.check(environ)  # as strict as S3, which moto is not
        else:
            refusal = _refusal(environ)
        if refusal is not None:
            return respond(refusal, start_response)
        change = change_of(environ)
        created = _created(environ)
        status, headers, body = self._moto(environ)
        if presigned_put and status.startswith("200"):
            headers = tidy_put_answer(headers)
        if int(status[:3]) < 300:
            if change is not None:
                self._deployed(change)
            if created is not None and (scope := scope_of(environ)) is not None:
                self._announce(scope.region, created, environ, headers, body)
        start_response(status, headers)
        return body

    def _deployed(self, change: Change) -> None:
        """A deploy changed something: forget what it may have changed of the region, and after
        a stack change put what moto's CloudFormation skipped (the template is read here,
        once per deploy, never on the path of an upload)."""
        log.info(
            "%s %s in %s: reloading deployed configuration", change.service, change.action, change.region
        )
        self.catalog.forget(change.region, change.service)
        if change.deployed_stack and change.region:
            buckets = self.notifications.buckets(change.region)
            apply_bucket_settings(self.clients("s3", change.region), buckets)
            self.notifications.wiring(change.region)
            threading.Thread(target=self._warm, args=(change.region,), name="warm", daemon=True).start()
        if change.region:
            self._prefill_later(change.region)

    def _prefill_later(self, region: str) -> None:
        """Fill the catalog again once the deploy's changes have stopped (PREFILL_AFTER), so
        that the first upload after a deploy finds what it needs loaded."""
        with self._prefill_lock:
            pending = self._prefill_timers.pop(region, None)
            if pending is not None:
                pending.cancel()
            timer = threading.Timer(PREFILL_AFTER, self._prefill, args=(region,))
            timer.daemon = True
            self._prefill_timers[region] = timer
            timer.start()

    def _prefill(self, region: str) -> None:
        """Load what the request path reads from the catalog: every API's routes and keys (per
        stage, and per stage a usage plan names), the buckets' event wiring, and every function,
        by name and by ARN (routes name a function by ARN, events and invocations as they were
        configured). The first request to moto's Lambda also builds its URL map (about 0.25 s),
        which a deploy through CloudFormation never made."""
        try:
            apigateway = self.clients("apigateway", region)
            plans = apigateway.get_usage_plans(limit=500).get("items", [])
            for api in apigateway.get_rest_apis(limit=500).get("items", []):
                self.api.routes(region, api["id"])
                # moto's CloudFormation makes no stage: the usage plans name the deploy's
                stages = {s["stageName"] for s in apigateway.get_stages(restApiId=api["id"]).get("item", [])}
                stages.update(
                    s["stage"] for p in plans for s in p.get("apiStages", []) if s.get("apiId") == api["id"]
                )
                for stage in sorted(stages):
                    self.api.valid_keys(region, api["id"], stage)
            self.notifications.wiring(region)
            pages = self.clients("lambda", region).get_paginator("list_functions").paginate()
            for function in (f for page in pages for f in page.get("Functions", [])):
                self.runner.function(region, function["FunctionName"])
                self.runner.function(region, function["FunctionArn"])
            self.prefilled.add()
        except Exception:  # the first request loads what is missing, as it always did
            log.exception("filling the catalog of %s ahead failed", region)

    def _warm(self, region: str) -> None:
        try:
            self.runner.warm(region)
            self.warmed.add()
        except Exception:  # the first invocation builds what is missing, as it always did
            log.exception("warming the clients of %s failed", region)

    def _announce(
        self,
        region: str,
        created: tuple[str, str, str],
        environ: dict[str, Any],
        headers: list[tuple[str, str]],
        body: list[bytes],
    ) -> None:
        bucket, key, name = created
        found = {k.lower(): v for k, v in headers}
        size: int | None = None
        etag = found.get("etag", "")
        if name == "ObjectCreated:Put":
            decoded = environ.get("HTTP_X_AMZ_DECODED_CONTENT_LENGTH") or environ.get("CONTENT_LENGTH") or "0"
            size = int(decoded)
        else:  # the ETag is in the XML answer; the size is looked up when delivering
            match = _ETAG.search(b"".join(body))
            etag = match.group(1).decode().replace("&quot;", '"') if match else etag
        self.notifications.object_created(
            region, CreatedObject(bucket, key, name, size, etag, found.get("x-amz-version-id"))
        )

    def _health(self) -> bytes:
        return json.dumps(
            {
                "status": "ok",
                "pid": os.getpid(),
                "requests": {kind: tally.value for kind, tally in self.requests.items()},
                "invocations": self.runner.invocations.value,
                "asyncPending": self.invoker.pending,
                "eventsPending": self.notifications.pending,
                "events": self.notifications.delivered.value,
                "catalogLoads": self.catalog.loads,
                "warmed": self.warmed.value,
                "prefilled": self.prefilled.value,
                "handlersPid": self.handlers.pid,
            }
        ).encode()

    def _moto_app(self, environ: dict[str, Any]) -> Any:
        """moto's application for the request. moto finds it anew for every request, under one
        lock, listing its own package directory on the way; for S3 and DynamoDB, most of the
        traffic, the signed-for service names it, and the answer is kept."""
        scope = scope_of(environ)
        kind = scope.service if scope else ""
        if kind == "dynamodb" and not environ.get("HTTP_X_AMZ_TARGET", "").startswith("DynamoDB_"):
            kind = ""  # DynamoDB Streams, or something moto must look at itself
        if kind not in {"s3", "dynamodb"}:
            return self.moto.get_application(environ)
        app = self._apps.get(kind)
        if app is None:
            app = self._apps[kind] = self.moto.get_application(environ)
        return app

    def _moto(self, environ: dict[str, Any]) -> tuple[str, list[tuple[str, str]], list[bytes]]:
        """moto's answer, whole. An exception in moto, or its HTML error page, becomes an
        error the caller's SDK can parse (and retry, as it would a 500 from AWS)."""
        answer: dict[str, Any] = {}
        extra: list[bytes] = []

        def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            answer["status"], answer["headers"] = status, headers
            return extra.append

        try:
            direct = _direct_callback(environ)
            if direct is not None:
                answer["status"], answer["headers"], body = _call_moto(direct, environ)
            else:
                result = self._moto_app(environ)(environ, capture)
                try:
                    body = [*extra, *result]
                finally:
                    close = getattr(result, "close", None)
                    if close:
                        close()
        except Exception:
            log.exception("moto failed on %s %s", environ.get("REQUEST_METHOD"), environ.get("PATH_INFO"))
            answer = {}
        status = answer.get("status", "500")
        content_type = dict((k.lower(), v) for k, v in answer.get("headers", [])).get("content-type", "")
        if not answer or (status.startswith("5") and content_type.startswith("text/html")):
            failed, headers, data = aws_error(environ, 500, "InternalError", INTERNAL_ERROR)
            return failed, [*headers.items(), ("Content-Length", str(len(data)))], [data]
        return status, answer["headers"], body


def _direct_callback(environ: dict[str, Any]) -> Any:
    """moto's own handler for a DynamoDB call or an S3 object call, or None.

    moto's server hands each request to a Flask application that matches the URL against
    every pattern of the service, builds a Flask response and adds CORS headers; for the
    handlers' own calls that was about a fifth of the stack's time per upload, and for an
    object PUT from outside a tenth. These requests go to the handler that Flask would have
    chosen, with the request object it would have built, and come back as Flask would have
    answered them, without CORS headers: a request without ``Origin`` (never a browser's
    cross-origin one) gets none from S3 either. A request with ``Origin`` still goes
    through Flask, which answers it and its preflight as before."""
    if environ.get("HTTP_ORIGIN") or environ.get("REQUEST_METHOD") == "OPTIONS":
        return None
    scope = scope_of(environ)
    if scope is None:
        return None
    if scope.service == "dynamodb" and environ.get("HTTP_X_AMZ_TARGET", "").startswith("DynamoDB_"):
        return _dynamodb_call
    if scope.service == "s3":
        bucket, _, key = environ.get("PATH_INFO", "").lstrip("/").partition("/")
        if bucket and key:
            return _s3_object_call
    return None


def _dynamodb_call(environ: dict[str, Any]) -> Any:
    """moto's DynamoDB handler, set up without a werkzeug request when it can be
    (``fastpaths.dynamodb_handler``)."""
    handler = fastpaths.dynamodb_handler(environ)
    if handler is not None:
        return handler.call_action()
    from moto.dynamodb.responses import DynamoHandler

    return _with_request(DynamoHandler.dispatch, environ)


def _s3_object_call(environ: dict[str, Any]) -> Any:
    """moto's answer to an S3 object call; a plain GetObject straight from its backend
    (``fastpaths.s3_object_get``)."""
    answer = fastpaths.s3_object_get(environ)
    if answer is not None:
        return answer
    from moto.s3.responses import S3Response

    return _with_request(S3Response.key_dispatch, environ)


def _with_request(callback: Any, environ: dict[str, Any]) -> Any:
    """``callback`` given the request moto's Flask application would have built."""
    from moto.moto_server.werkzeug_app import BackendRequest

    request = BackendRequest(environ)
    return callback(request, request.raw_url, dict(request.headers))


def _call_moto(call: Any, environ: dict[str, Any]) -> tuple[str, list[tuple[str, str]], list[bytes]]:
    """Call one of moto's handlers as moto's Flask application would (``_direct_callback``)."""
    from botocore.exceptions import ClientError
    from werkzeug.exceptions import HTTPException

    try:
        result = call(environ)
    except HTTPException as exc:
        result = exc.code or 500, dict(exc.get_headers()), exc.get_body()
    except ClientError as exc:
        result = 400, {}, exc.response["Error"]["Message"]
    status, headers, content = result if len(result) == 3 else (200, {}, result)
    data = content.encode("utf-8") if isinstance(content, str) else bytes(content or b"")
    merged = {str(name): str(value) for name, value in dict(headers).items()}
    lowered = {name.lower() for name in merged}
    if "content-type" not in lowered:
        merged["Content-Type"] = "text/html; charset=utf-8"
    if "content-length" not in lowered:
        merged["Content-Length"] = str(len(data))
    return status_line(int(status)), list(merged.items()), [data]


def _refusal(environ: dict[str, Any]) -> Answer | None:
    """An error for a request that must not reach moto, which would answer it with an HTML
    page or wait forever: a body that is not what its Content-Length says, or a region that
    AWS does not have. A body that reads well is handed on to moto in memory."""
    try:
        if environ.get("imgup.in_process"):
            pass  # its body is already in memory, whole
        elif declared_length(environ) or environ.get("wsgi.input_terminated"):
            environ["wsgi.input"] = io.BytesIO(read_body(environ, MAX_OBJECT_BYTES))
    except BodyError as exc:
        return aws_error(environ, 400, BODY_ERROR_CODES[exc.kind], exc.message)
    scope = scope_of(environ)
    if scope is not None and scope.region not in known_regions():
        code = "AuthorizationHeaderMalformed" if scope.service == "s3" else "InvalidRegion"
        region = scope.region[:60]
        return aws_error(
            environ,
            400,
            code,
            f"The local stack serves the regions AWS has, and {region!r} is not one; "
            "use a region such as us-east-1.",
        )
    return None


def _read_timeout() -> float:
    try:
        value = float(os.environ.get(READ_TIMEOUT_ENV) or READ_TIMEOUT)
    except ValueError:
        value = READ_TIMEOUT
    return value if 0 < value <= 3600 else READ_TIMEOUT


def _handler(timeout: float) -> Any:
    """moto's request handler (it keeps the underscores of S3 metadata headers) with a
    socket timeout: a client that stops sending in the middle of a request line, its headers
    or its body gets an error after ``timeout`` seconds instead of holding a thread forever."""
    from moto.moto_server.werkzeug_app import MotoRequestHandler

    return type("LocalStackRequestHandler", (MotoRequestHandler,), {"timeout": timeout})


def serve(state_dir: Path, port: int = 0) -> None:
    from werkzeug.serving import make_server

    state_dir.mkdir(parents=True, exist_ok=True)
    gc.set_threshold(*GC_THRESHOLDS)
    logging.basicConfig(
        filename=state_dir / LOG_FILE,
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    # Each access line would repeat presigned URLs; keep the log to what matters.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)

    holder: dict[str, Any] = {}

    def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        return holder["app"](environ, start_response)

    server = make_server("127.0.0.1", port, app, threaded=True, request_handler=_handler(_read_timeout()))
    endpoint = f"http://127.0.0.1:{server.port}"
    holder["app"] = LocalStackApp(endpoint, handlers_log=str(state_dir / LOG_FILE))

    def stop(signum: int, frame: Any) -> None:
        log.info("signal %s: stopping", signum)
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    state = {"pid": os.getpid(), "port": server.port, "endpointUrl": endpoint, "startedAt": time.time()}
    state_path = state_dir / STATE_FILE
    tmp = state_path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state), encoding="utf-8")
    os.replace(tmp, state_path)
    log.info("local stack serving on %s (pid %s)", endpoint, os.getpid())
    try:
        server.serve_forever(poll_interval=0.1)
    finally:
        holder["app"].notifications.shutdown()
        holder["app"].invoker.shutdown()
        holder["app"].handlers.shutdown()
        try:
            if json.loads(state_path.read_text()).get("pid") == os.getpid():
                state_path.unlink()
        except (OSError, ValueError):
            pass
        log.info("local stack stopped")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m imgup.local.server")
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    serve(args.state_dir, args.port)
    # Everything is stopped and written. The interpreter's own teardown would now free moto's
    # whole state object by object (about 2 s, during which `imgup local stop` and cleanup
    # wait for the process to end), for memory that the process gives back anyway.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
