"""Fault injection on 127.0.0.1, and the consistency check that every fault test ends with.

One vocabulary of faults (``FaultPlan``: rules of method + path substring + which matching
requests, 1-based) drives two tools:

- ``FaultTransport``: an httpx transport around a real ``httpx.HTTPTransport``, for the client
  core run in-process (``ImageApi``, ``Uploader``, ``upload_all``) against the local stack;
- ``FaultProxy``: a small threaded HTTP proxy that forwards to the local stack's endpoint and
  rewrites the ``uploadUrl`` of ``POST /upload`` answers to come through it too (moto checks
  no signature, so the changed host does not matter), for the real ``imgup`` command in a
  subprocess. ``proxied_config`` writes a config dir whose ``api_url`` goes through it.

The faults, and what each tool does for it:

    Answer(status)    answer without forwarding (after reading the body, as a server does)
    Reset(after)      drop the connection: before forwarding, part-way through the body (the
                      server never sees the request), or after forwarding (the server did the
                      work; the answer is lost)
    Timeout(after)    the answer never comes: ``httpx.ReadTimeout`` in the transport; the proxy
                      holds the connection (bounded) until the client's own timeout fires
    Slow(rate)        proxy only: read the request body at ``rate`` bytes/s (then forward it
                      whole, as S3 never stores a truncated PUT)

``Consistency`` reads the table and the bucket behind the stack (``imgup.doctor.check`` plus
what it leaves out: no pending record keeps an object once S3 events have settled) and the
gallery, so that a test can assert that the gallery holds exactly what was reported uploaded.
"""

from __future__ import annotations

import http.client
import json
import shutil
import socket
import struct
import threading
import time
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

EXPIRED_XML = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code>'
    b"<Message>Request has expired</Message><X-Amz-Expires>300</X-Amz-Expires>"
    b"<RequestId>FAULT0000000000</RequestId></Error>"
)
HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "upgrade"}


# --- the faults -------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes = b'{"message": "injected fault"}'
    headers: tuple[tuple[str, str], ...] = (("content-type", "application/json"),)


def expired() -> Answer:
    """What S3 answers a PUT to a presigned URL that has expired."""
    return Answer(403, EXPIRED_XML, (("content-type", "application/xml"),))


@dataclass(frozen=True)
class Reset:
    after: bool = False  # after forwarding: the server did the work, the answer is lost


@dataclass(frozen=True)
class Timeout:
    after: bool = False


@dataclass(frozen=True)
class Slow:
    rate: int  # bytes per second


Fault = Answer | Reset | Timeout | Slow


def path_matches(pattern: str, path: str) -> bool:
    """``pattern`` is a substring of ``path``; one ending in "$" must end it (``/upload$`` is
    the single presign route, not ``/uploads``)."""
    if pattern.endswith("$"):
        return path.endswith(pattern[:-1])
    return pattern in path


@dataclass
class Rule:
    method: str
    path: str  # a substring of the URL path (see path_matches)
    fault: Fault
    hits: Collection[int] | None = None  # which matching requests (1-based); None: all
    body: bytes | None = None  # a substring of the request body (an API request's JSON)
    seen: int = 0

    def matches(self, method: str, path: str, body: bytes = b"") -> bool:
        return (
            method.upper() == self.method.upper()
            and path_matches(self.path, path)
            and (self.body is None or self.body in body)
        )


def first(n: int) -> range:
    return range(1, n + 1)


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    fault: Fault | None


@dataclass
class FaultPlan:
    """Rules, and a thread-safe log of every request and the fault it met (or None)."""

    rules: list[Rule] = field(default_factory=list)
    log: list[Seen] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _arrived: threading.Condition = field(init=False)

    def __post_init__(self) -> None:
        self._arrived = threading.Condition(self._lock)

    def add(
        self,
        method: str,
        path: str,
        fault: Fault,
        hits: Collection[int] | None = None,
        body: bytes | None = None,
    ) -> FaultPlan:
        with self._lock:
            self.rules.append(Rule(method, path, fault, hits, body))
        return self

    def match(self, method: str, path: str, body: bytes = b"") -> Fault | None:
        """Count the request against every rule it matches; the first rule that fires wins.
        ``body``: the request's body when it is in memory (a rule with ``body`` needs it)."""
        chosen: Fault | None = None
        with self._lock:
            for rule in self.rules:
                if rule.matches(method, path, body):
                    rule.seen += 1
                    if chosen is None and (rule.hits is None or rule.seen in rule.hits):
                        chosen = rule.fault
            self.log.append(Seen(method.upper(), path, chosen))
            self._arrived.notify_all()
        return chosen

    def requests(self, method: str, path: str = "") -> list[Seen]:
        with self._lock:
            return [s for s in self.log if s.method == method.upper() and path_matches(path, s.path)]

    def faults(self, method: str, path: str = "") -> list[Seen]:
        return [s for s in self.requests(method, path) if s.fault is not None]

    def wait_for(self, method: str, path: str = "", count: int = 1, timeout: float = 30.0) -> bool:
        """Wait (bounded) until ``count`` requests matching method + path have arrived."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while (
                sum(1 for s in self.log if s.method == method.upper() and path_matches(path, s.path)) < count
            ):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._arrived.wait(left)
        return True


# --- in-process: an httpx transport ----------------------------------------------------


def _drain(request: httpx.Request, limit: int | None = None) -> int:
    """Read the request body as a server would (at most ``limit`` bytes, in whole chunks)."""
    read = 0
    for chunk in request.stream:  # type: ignore[union-attr]
        read += len(chunk)
        if limit is not None and read >= limit:
            break
    return read


class FaultTransport(httpx.BaseTransport):
    """Applies a ``FaultPlan`` in front of a real transport."""

    def __init__(self, plan: FaultPlan, inner: httpx.BaseTransport | None = None) -> None:
        self.plan = plan
        self.inner = inner or httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        try:
            body = request.content  # an API request's JSON; not a streamed PUT's body
        except httpx.RequestNotRead:
            body = b""
        fault = self.plan.match(request.method, request.url.path, body)
        if fault is None or isinstance(fault, Slow):
            return self.inner.handle_request(request)
        if isinstance(fault, Answer):
            _drain(request)
            return httpx.Response(fault.status, headers=list(fault.headers), content=fault.body)
        if fault.after:
            response = self.inner.handle_request(request)
            response.read()
            response.close()
        else:
            length = int(request.headers.get("content-length") or 0)
            _drain(request, limit=max(1, length // 2))
        if isinstance(fault, Reset):
            if fault.after:
                raise httpx.RemoteProtocolError(
                    "Server disconnected without sending a response.", request=request
                )
            raise httpx.ReadError("[Errno 104] Connection reset by peer", request=request)
        raise httpx.ReadTimeout("The read operation timed out", request=request)

    def close(self) -> None:
        self.inner.close()


# --- for subprocesses: a proxy on 127.0.0.1 ---------------------------------------------


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False


class FaultProxy:
    """Forwards to ``upstream`` (the local stack's endpoint), applying ``plan``.

    ``hold`` bounds how long a Timeout keeps a connection unanswered; give the client a
    shorter timeout (``IMGUP_TIMEOUT``) than that.
    """

    def __init__(
        self, upstream: str, plan: FaultPlan, *, hold: float = 10.0, rcvbuf: int | None = None
    ) -> None:
        parts = urlsplit(upstream)
        assert parts.hostname == "127.0.0.1", "the fault proxy only forwards to 127.0.0.1"
        self.upstream = upstream.rstrip("/")
        self._upstream_port = parts.port or 80
        self.plan = plan
        self.hold = hold
        self.stopping = threading.Event()
        self._server = _Server(("127.0.0.1", 0), self._handler_class(), bind_and_activate=False)
        if rcvbuf:  # inherited by accepted sockets, so that a slow reader slows the sender
            self._server.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self._server.server_bind()
        self._server.server_activate()
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True
        )

    def __enter__(self) -> FaultProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self.stopping.set()
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join(timeout=10)
        self._server.server_close()

    def forward(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, list, bytes]:
        connection = http.client.HTTPConnection("127.0.0.1", self._upstream_port, timeout=60)
        try:
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            data = response.read()
            return response.status, response.getheaders(), data
        finally:
            connection.close()

    def rewrite(self, method: str, path: str, status: int, data: bytes) -> bytes:
        """Send the presigned PUTs of ``POST /upload`` and ``POST /uploads`` answers through the
        proxy as well."""
        if method != "POST" or not path.endswith(("/upload", "/uploads")) or status != 200:
            return data
        try:
            body = json.loads(data)
        except ValueError:
            return data
        grants = body.get("uploads") if isinstance(body, dict) and "uploads" in body else [body]
        for grant in grants if isinstance(grants, list) else []:
            url = grant.get("uploadUrl") if isinstance(grant, dict) else None
            if isinstance(url, str) and url.startswith(self.upstream + "/"):
                grant["uploadUrl"] = self.url + url[len(self.upstream) :]
        return json.dumps(body).encode()

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

            def do_GET(self) -> None:  # noqa: N802
                self._proxy()

            do_POST = do_PUT = do_DELETE = do_HEAD = do_OPTIONS = do_GET  # noqa: N815

            def _reset(self) -> None:
                """Drop the connection with a TCP reset, answering nothing."""
                self.close_connection = True
                try:
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    self.connection.close()
                except OSError:
                    pass

            def _read(self, length: int, rate: int | None = None) -> bytes | None:
                """The body, or None when the client went away before sending all of it."""
                parts: list[bytes] = []
                got = 0
                step = max(1024, rate // 20) if rate else 64 * 1024
                while got < length:
                    try:
                        chunk = self.rfile.read(min(step, length - got))
                    except OSError:
                        return None
                    if not chunk:
                        return None
                    parts.append(chunk)
                    got += len(chunk)
                    if rate and proxy.stopping.wait(len(chunk) / rate):
                        return None
                return b"".join(parts)

            def _proxy(self) -> None:
                method = self.command
                path = urlsplit(self.path).path
                if "chunked" in (self.headers.get("transfer-encoding") or "").lower():
                    self._send(501, [], b"chunked bodies are not supported by the fault proxy")
                    return
                length = int(self.headers.get("content-length") or 0)
                fault = proxy.plan.match(method, path)
                if isinstance(fault, Reset) and not fault.after:
                    if length:
                        self._read(max(1, length // 2))
                    self._reset()
                    return
                body = self._read(length, fault.rate if isinstance(fault, Slow) else None)
                if body is None:  # the client gave up part-way: forward nothing
                    self.close_connection = True
                    return
                if isinstance(fault, Answer):
                    self._send(fault.status, list(fault.headers), fault.body)
                    return
                if isinstance(fault, Timeout) and not fault.after:
                    self._hold()
                    return
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP | {"host"}}
                headers["Host"] = f"127.0.0.1:{proxy._upstream_port}"
                try:
                    status, answer_headers, data = proxy.forward(self.command, self.path, headers, body)
                except OSError:
                    self._send(502, [], b'{"message": "the fault proxy could not reach the stack"}')
                    return
                if isinstance(fault, Reset):
                    self._reset()
                    return
                if isinstance(fault, Timeout):
                    self._hold()
                    return
                self._send(status, answer_headers, proxy.rewrite(method, path, status, data))

            def _hold(self) -> None:
                proxy.stopping.wait(proxy.hold)
                self.close_connection = True

            def _send(self, status: int, headers: list, data: bytes) -> None:
                try:
                    self.send_response(status)
                    for name, value in headers:
                        if name.lower() not in HOP_BY_HOP | {"content-length"}:
                            self.send_header(name, value)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(data)
                    self.wfile.flush()
                except OSError:
                    self.close_connection = True

        return Handler


def proxied_config(stack: Any, proxy: FaultProxy, directory: Path) -> dict[str, str]:
    """A copy of the stack's config dir whose ``api_url`` goes through ``proxy``; the
    environment that points ``imgup`` at it. Never run ``cleanup`` in it."""
    from imgup.deployments import Registry

    directory.mkdir(parents=True, exist_ok=True)
    source = Registry(stack.config_dir)
    [which] = source.ids()
    deployment = source.load(which)
    assert deployment.api_url.startswith(stack.endpoint_url)
    deployment.api_url = proxy.url + deployment.api_url[len(stack.endpoint_url) :]
    Registry(directory).save(deployment, source.api_key(which))
    (directory / "local").mkdir(exist_ok=True)
    shutil.copy2(stack.config_dir / "local" / "local.json", directory / "local" / "local.json")
    return {"IMGUP_CONFIG_DIR": str(directory)}


# --- the consistency check --------------------------------------------------------------


@dataclass
class Consistency:
    """The stack's state, read behind the API: doctor's report, records, objects, gallery."""

    stack: Any

    def __post_init__(self) -> None:
        from imgup.aws import local_target
        from imgup.deployments import Registry

        registry = Registry(self.stack.config_dir)
        [which] = registry.ids()
        self.deployment = registry.load(which)
        self.target = local_target(self.stack.endpoint_url, self.deployment.region)

    def records(self) -> list[Any]:
        from imgup.backend.storage import ImageRecord

        pages = self.target.client("dynamodb").get_paginator("scan")
        return [
            ImageRecord.from_item(item)
            for page in pages.paginate(TableName=self.deployment.table, ConsistentRead=True)
            for item in page.get("Items", [])
        ]

    def objects(self) -> dict[str, int]:
        pages = self.target.client("s3").get_paginator("list_objects_v2")
        return {
            item["Key"]: int(item["Size"])
            for page in pages.paginate(Bucket=self.deployment.bucket, Prefix="images/")
            for item in page.get("Contents", [])
        }

    def gallery(self) -> dict[str, dict[str, Any]]:
        from imgup.api import ImageApi, RetryPolicy

        with httpx.Client(timeout=30) as http:
            api = ImageApi(self.stack.api_url, self.stack.api_key, http, RetryPolicy(retries=0))
            return {image["imageId"]: image for image in api.iter_images(page_size=100)}

    def settle(self, timeout: float = 15.0) -> list[str]:
        """Wait (bounded) until S3 events have been handled: no pending record whose object
        is in the bucket. The keys still waiting (empty when settled)."""
        deadline = time.monotonic() + timeout
        while True:
            objects = self.objects()
            waiting = [r.s3_key for r in self.records() if r.status == "pending" and r.s3_key in objects]
            if not waiting or time.monotonic() >= deadline:
                return waiting
            time.sleep(0.2)

    def check(self, *, before: Collection[str], reported: Collection[str]) -> dict[str, dict[str, Any]]:
        """Assert the invariants after a run that started with gallery ``before`` and reported
        ``reported`` image ids uploaded; the gallery now."""
        from imgup.doctor import check

        assert self.settle() == [], "objects of pending records were never completed by S3 events"
        report = check(self.target, self.deployment, verify_checksums=True)
        assert report.problems == [], report.as_dict()
        gallery = self.gallery()
        assert report.records["ready"] == len(gallery)
        added = set(gallery) - set(before)
        assert set(before) <= set(gallery), "an image that was listed before has vanished"
        assert added == set(reported), (
            f"listed but never reported uploaded: {sorted(added - set(reported))}; "
            f"reported uploaded but not listed: {sorted(set(reported) - added)}"
        )
        return gallery


def iter_lines(text: str) -> Iterator[dict[str, Any]]:
    for line in text.splitlines():
        if line.strip():
            yield json.loads(line)
