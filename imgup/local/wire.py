"""HTTP plumbing shared by the local stack's front doors: bounded body reads, the region and
service a request is signed for, and errors in the shape each AWS protocol's clients parse.

Every read of a request body goes through ``read_body``: it trusts no ``Content-Length``
(non-numeric, negative, larger than a limit or than the body really sent), and the server's
socket timeout bounds how long it waits for bytes that never come, so no request can hang a
thread or turn into an HTML error page.
"""

from __future__ import annotations

import contextlib
import functools
import json
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote
from xml.sax.saxutils import escape

Answer = tuple[str, dict[str, str], bytes]  # WSGI status line, headers, body

_LENGTH = re.compile(r"[0-9]{1,19}")
_SCOPE = re.compile(r"Credential=([^/,\s]*)/(\d{8})/([^/,\s]*)/([^/,\s]*)/aws4_request")
CHUNK = 1 << 20
MAX_OBJECT_BYTES = 5 * 1024**3  # S3's largest single PUT
# The error code S3 answers for each kind of unreadable body (BodyError.kind)
BODY_ERROR_CODES = {
    "invalid-length": "BadRequest",
    "incomplete": "IncompleteBody",
    "timeout": "RequestTimeout",
    "too-large": "EntityTooLarge",
    "malformed": "BadRequest",
}


class BodyError(Exception):
    """A request body that cannot be read as declared. ``kind`` is one of ``invalid-length``,
    ``too-large``, ``incomplete`` (the body ended before its declared length), ``timeout``
    (the client stopped sending) and ``malformed`` (a broken chunked encoding)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


def declared_length(environ: dict[str, Any]) -> int | None:
    """The request's Content-Length; None when it has none. BodyError when it is not a
    number of bytes."""
    raw = environ.get("CONTENT_LENGTH")
    if raw is None or raw == "":
        return None
    if not _LENGTH.fullmatch(raw.strip()):
        raise BodyError("invalid-length", f"Invalid Content-Length header: {raw[:40]!r}")
    return int(raw)


def read_body(environ: dict[str, Any], limit: int) -> bytes:
    """The whole request body: exactly Content-Length bytes, or a chunked body to its end;
    BodyError when it is longer than ``limit``, shorter than declared, or stalls (the
    server's socket timeout ends the wait)."""
    length = declared_length(environ)
    stream = environ["wsgi.input"]
    if length is None:
        if not environ.get("wsgi.input_terminated"):
            return b""
        data = _read(stream, limit + 1)
        if len(data) > limit:
            raise BodyError("too-large", f"The request body is larger than {limit} bytes.")
        return data
    if length > limit:
        raise BodyError("too-large", f"The request body is larger than {limit} bytes.")
    data = _read(stream, length)
    if len(data) < length:
        raise BodyError(
            "incomplete",
            f"The request body ended after {len(data)} of the {length} bytes its Content-Length declared.",
        )
    return data


def _read(stream: Any, count: int) -> bytes:
    chunks: list[bytes] = []
    remaining = count
    try:
        while remaining > 0:
            chunk = stream.read(min(remaining, CHUNK))
            if not chunk:
                break
            chunks.append(chunk)
            remaining -= len(chunk)
    except TimeoutError:
        raise BodyError(
            "timeout", "The client stopped sending the request body before its declared end."
        ) from None
    except (OSError, ValueError) as exc:  # a broken chunked encoding, a dropped connection
        raise BodyError("malformed", f"The request body could not be read: {exc}") from None
    return b"".join(chunks)


# --- what a request is signed for ---------------------------------------------------------


@dataclass(frozen=True)
class Scope:
    """A SigV4 credential scope: ``<access key>/<date>/<region>/<service>/aws4_request``."""

    access_key: str
    date: str
    region: str
    service: str


_SCOPE_KEY = "imgup.scope"


def scope_of(environ: dict[str, Any]) -> Scope | None:
    """The credential scope of a SigV4 request (header or query string), else None. Found
    once per request (the stack asks several times) and kept in the environ."""
    if _SCOPE_KEY in environ:
        return environ[_SCOPE_KEY]
    auth = environ.get("HTTP_AUTHORIZATION", "")
    match = _SCOPE.search(auth) if auth else None
    if match is None and "Credential=" in environ.get("QUERY_STRING", ""):
        match = _SCOPE.search(unquote(environ["QUERY_STRING"]))
    scope = None if match is None else Scope(*match.groups())
    environ[_SCOPE_KEY] = scope
    return scope


@functools.cache
def known_regions() -> frozenset[str]:
    """Every region of every AWS partition that this botocore knows."""
    import botocore.session

    endpoints = botocore.session.get_session().get_data("endpoints")
    return frozenset(region for partition in endpoints["partitions"] for region in partition["regions"])


# --- errors in the caller's protocol ------------------------------------------------------

_JSON_SERVICES = {"lambda", "apigateway", "execute-api", "logs", "dynamodb", "kms", "sqs"}


def aws_error(environ: dict[str, Any], status: int, code: str, message: str) -> Answer:
    """An error as the signed-for service would send it: S3's XML, JSON for the JSON and
    REST-JSON protocols, the query protocol's XML otherwise. botocore parses each into a
    ClientError with this code and message."""
    scope = scope_of(environ)
    service = scope.service if scope else ""
    request_id = str(uuid.uuid4())
    if service == "s3" or (not scope and not environ.get("HTTP_X_AMZ_TARGET")):
        return s3_error(status, code, message, request_id=request_id)
    if (
        service in _JSON_SERVICES
        or environ.get("HTTP_X_AMZ_TARGET")
        or "json" in environ.get("CONTENT_TYPE", "")
    ):
        body = json.dumps({"__type": code, "message": message}).encode()
        headers = {
            "Content-Type": "application/x-amz-json-1.0",
            "x-amzn-ErrorType": code,
            "x-amzn-RequestId": request_id,
        }
        return status_line(status), headers, body
    xml = (
        "<ErrorResponse><Error><Type>Sender</Type>"
        f"<Code>{escape(code)}</Code><Message>{escape(message)}</Message></Error>"
        f"<RequestId>{request_id}</RequestId></ErrorResponse>"
    )
    return status_line(status), {"Content-Type": "text/xml", "x-amzn-RequestId": request_id}, xml.encode()


def s3_error(
    status: int, code: str, message: str, *, request_id: str | None = None, **details: str
) -> Answer:
    """An S3 error document, with S3's extra elements (``Key``, ``Expires``, ...) in order."""
    request_id = request_id or uuid.uuid4().hex[:16].upper()
    extra = "".join(f"<{name}>{escape(str(value))}</{name}>" for name, value in details.items())
    xml = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{escape(code)}</Code><Message>{escape(message)}</Message>{extra}"
        f"<RequestId>{request_id}</RequestId><HostId>imgup-local</HostId></Error>"
    )
    headers = {
        "Content-Type": "application/xml",
        "x-amz-request-id": request_id,
        "x-amz-id-2": "imgup-local",
    }
    return status_line(status), headers, xml.encode()


def status_line(status: int) -> str:
    from http import HTTPStatus

    try:
        return f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        return f"{status} Status"


def respond(answer: Answer, start_response: Any) -> list[bytes]:
    status, headers, body = answer
    start_response(status, [*headers.items(), ("Content-Length", str(len(body)))])
    return [body]


class Tally:
    """A thread-safe counter of what the stack served (reported by its health endpoint)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.value = 0

    def add(self) -> None:
        with self._lock:
            self.value += 1


class Foreground:
    """Requests from outside the process being served, and since when there are none: the
    stack's background work (S3 events, asynchronous invocations) waits for a quiet moment
    (``wait_for_quiet``), as it would run elsewhere on AWS instead of taking turns with the
    requests for the machine's cores."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._active = 0
        self._since = time.monotonic()

    @contextlib.contextmanager
    def serving(self) -> Iterator[None]:
        with self._lock:
            self._active += 1
        try:
            yield
        finally:
            with self._lock:
                self._active -= 1
                self._since = time.monotonic()

    def quiet_for(self) -> float:
        """Seconds since the last request ended; 0 while one is being served."""
        with self._lock:
            return 0.0 if self._active else time.monotonic() - self._since


QUIET = 0.05
"""Seconds without a request from outside that make a quiet moment for background work."""
MAX_WAIT = 30.0
"""Seconds at most that background work waits for a quiet moment, from when it was handed in."""


def wait_for_quiet(
    quiet_for: Callable[[], float] | None,
    handed_in: float,
    *,
    quiet: float = QUIET,
    max_wait: float = MAX_WAIT,
) -> None:
    """Block until no request from outside was served for ``quiet`` seconds (``quiet_for``, a
    Foreground's), or until ``max_wait`` seconds after ``handed_in`` (``time.monotonic()``
    when the work was handed in): work waiting behind other work is not put off again, so
    under a load that never pauses, it runs at most ``max_wait`` late."""
    if quiet_for is None:
        return
    deadline = handed_in + max_wait
    while quiet_for() < quiet:
        left = deadline - time.monotonic()
        if left <= 0:
            return
        time.sleep(min(quiet / 2, left))
