"""boto3 calls from inside the local stack, answered in-process.

The handlers the stack runs, and the stack's own look-ups, use ordinary boto3 clients aimed
at the stack's endpoint. Over HTTP each call would cost a new connection (werkzeug closes
every one), a thread, and the parsing on both sides. Instead a botocore ``before-send``
hook, the hook that moto's own ``mock_aws`` uses, hands every request addressed to this
process's endpoint straight to the stack's WSGI application and turns its answer into the
response botocore would have read from the socket. The request takes the same path as one
from outside (region checks, S3 events, the watch on deploys), and moto's state is shared,
never reset.
"""

from __future__ import annotations

import io
import sys
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import unquote, urlsplit

from ..aws import LOCAL_CREDENTIALS

WsgiApp = Callable[[dict[str, Any], Any], Iterable[bytes]]


class _Body(io.BytesIO):
    """A response body as botocore reads one from urllib3: ``read`` and ``stream``."""

    def stream(self, amt: int = 65536, decode_content: bool | None = None) -> Iterable[bytes]:
        while chunk := self.read(amt):
            yield chunk


class InProcessDispatch:
    """The ``before-send`` hook: answers requests for ``endpoint_url`` with ``app``.
    The environ it builds carries ``imgup.in_process``."""

    def __init__(self, endpoint_url: str, app: WsgiApp) -> None:
        self.endpoint_url = endpoint_url.rstrip("/")
        parts = urlsplit(self.endpoint_url)
        self._server = (parts.hostname or "127.0.0.1", str(parts.port or 80))
        self.app = app

    def install(self) -> None:
        """Hook every botocore session created from now on in this process. Only requests
        to this stack's endpoint are taken; any other goes out as usual."""
        from botocore.handlers import BUILTIN_HANDLERS

        if ("before-send", self) not in BUILTIN_HANDLERS:
            BUILTIN_HANDLERS.append(("before-send", self))
            BUILTIN_HANDLERS.append(("before-call", self.before_call))
        _skip_signing_for(self.endpoint_url)

    def before_call(
        self, model: Any, params: dict[str, Any], request_signer: Any, context: dict[str, Any], **kwargs: Any
    ) -> tuple[Any, dict[str, Any]] | None:
        """The ``before-call`` hook: a DynamoDB call, or an S3 read, to this stack is answered
        here, serialized and parsed by botocore as it would be, but without what only a
        request that leaves the process needs: building the HTTP request, signing it,
        retrying it, checking its checksums (about a tenth of the stack's time per upload).
        Any other call (an S3 write, with its checksum; any other service) takes the
        ``before-send`` path."""
        url = params.get("url") or ""
        if not url.startswith(self.endpoint_url + "/"):
            return None
        service = model.service_model.service_name
        if not (service == "dynamodb" or (service == "s3" and params.get("method") in {"GET", "HEAD"})):
            return None
        body = params.get("body") or b""
        if not isinstance(body, bytes | bytearray | str):
            return None  # a stream: an upload, which goes the whole way
        from botocore.awsrequest import AWSResponse
        from botocore.endpoint import convert_to_response_dict
        from botocore.handlers import handle_expires_header
        from botocore.parsers import create_parser

        signing = context.get("signing") or {}
        credentials = request_signer._credentials.get_frozen_credentials()
        headers = {str(k): str(v) for k, v in (params.get("headers") or {}).items()}
        headers.update(
            scope_headers(
                credentials.access_key,
                credentials.token,
                signing.get("region") or request_signer._region_name,
                signing.get("signing_name") or request_signer._signing_name,
            )
        )
        status, answered, data = self.serve(params["method"], url, headers, _bytes(body))
        http = AWSResponse(url, status, answered, _Body(data))
        response = convert_to_response_dict(http, model)
        customized: dict[str, Any] = {}
        if service == "s3":
            handle_expires_header(model, response, customized)
        parser = create_parser(model.service_model.resolved_protocol)
        parsed: dict[str, Any] = parser.parse(response, model.output_shape)
        parsed.update(customized)
        if status >= 300:  # the modeled fields of an error (as botocore's endpoint adds them)
            error_shape = model.service_model.shape_for_error_code(parsed.get("Error", {}).get("Code"))
            if error_shape is not None:
                parsed.update(parser.parse(response, error_shape))
        parsed.setdefault("ResponseMetadata", {})["RetryAttempts"] = 0
        return http, parsed

    def __call__(self, request: Any, **kwargs: Any) -> Any:
        url = request.url
        if not (url.startswith(self.endpoint_url + "/") or url == self.endpoint_url):
            return None
        from botocore.awsrequest import AWSResponse

        status, headers, body = self.serve(
            request.method, url, _headers(request.headers), _bytes(request.body)
        )
        return AWSResponse(url, status, headers, _Body(body))

    def serve(self, method: str, url: str, headers: dict[str, str], body: bytes) -> tuple[int, dict, bytes]:
        environ = self._environ(method, url, headers, body)
        answer: dict[str, Any] = {}

        def start_response(status: str, response_headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            answer["status"], answer["headers"] = status, response_headers
            return written.append

        written: list[bytes] = []
        result = self.app(environ, start_response)
        try:
            data = b"".join([*written, *result])
        finally:
            close = getattr(result, "close", None)
            if close:
                close()
        merged: dict[str, str] = {}
        for name, value in answer["headers"]:
            merged[name] = f"{merged[name]},{value}" if name in merged else value
        return int(answer["status"].split(" ", 1)[0]), merged, data

    def _environ(self, method: str, url: str, headers: dict[str, str], body: bytes) -> dict[str, Any]:
        from moto.core.request import (
            PRESERVED_HEADER_NAMES_ENVIRON_KEY,
            environ_key_for_header,
            should_preserve_original_header_name,
        )

        parts = urlsplit(url)
        raw_path = parts.path or "/"
        environ: dict[str, Any] = {
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(body),
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": True,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
            "REQUEST_METHOD": method.upper(),
            "SCRIPT_NAME": "",
            # as werkzeug's server does: decoded, then carried as latin-1
            "PATH_INFO": unquote(raw_path).encode("utf-8").decode("latin-1"),
            "QUERY_STRING": parts.query,
            "REQUEST_URI": raw_path + (f"?{parts.query}" if parts.query else ""),
            "RAW_URI": raw_path + (f"?{parts.query}" if parts.query else ""),
            "SERVER_NAME": self._server[0],
            "SERVER_PORT": self._server[1],
            "SERVER_PROTOCOL": "HTTP/1.1",
            "REMOTE_ADDR": "127.0.0.1",
            "REMOTE_PORT": 0,
            "HTTP_HOST": parts.netloc,
            "CONTENT_LENGTH": str(len(body)),
            "imgup.in_process": True,
        }
        preserved = {}
        for name, value in headers.items():
            key = environ_key_for_header(name)
            if key == "CONTENT_LENGTH":
                continue  # the body is whole: its length is what it is
            environ[key] = value
            if should_preserve_original_header_name(name):
                preserved[key] = name
        environ[PRESERVED_HEADER_NAMES_ENVIRON_KEY] = preserved
        return environ


def _skip_signing_for(endpoint_url: str) -> None:
    """Requests to this process's own endpoint are not signed, only labelled with their
    credential scope (which moto and the stack read: region, service, account); every other
    request is signed as usual. SigV4 (canonical request, hashing the body, four HMACs) was
    a tenth of the stack's time per upload, for a signature that nothing checks: a request
    answered in-process never left the process. Presigned URLs (``*-query``) are untouched:
    the stack checks those strictly (``imgup.local.presigned``)."""
    from botocore import auth

    for version, signer in (("v4", auth.SigV4Auth), ("s3v4", auth.S3SigV4Auth)):
        current = auth.AUTH_TYPE_MAPS[version]
        endpoints = getattr(current, "local_endpoints", None)
        if endpoints is None:
            endpoints = []
            auth.AUTH_TYPE_MAPS[version] = type(
                f"InProcess{signer.__name__}", (_ScopeOnly, signer), {"local_endpoints": endpoints}
            )
        if endpoint_url + "/" not in endpoints:
            endpoints.append(endpoint_url + "/")


class _ScopeOnly:
    """Mixed into a botocore SigV4 signer: see ``_skip_signing_for``."""

    local_endpoints: list[str]
    credentials: Any
    _region_name: str
    _service_name: str

    def add_auth(self, request: Any) -> None:
        if not request.url.startswith(tuple(self.local_endpoints)) or self.credentials is None:
            super().add_auth(request)  # type: ignore[misc]
            return
        for name in ("Authorization", "X-Amz-Date", "X-Amz-Security-Token"):
            if name in request.headers:
                del request.headers[name]
        added = scope_headers(
            self.credentials.access_key, self.credentials.token, self._region_name, self._service_name
        )
        if "X-Amz-Content-SHA256" in request.headers:
            added.pop("X-Amz-Content-SHA256", None)
        for name, value in added.items():
            request.headers[name] = value


def scope_headers(access_key: str, token: str | None, region: str, service: str) -> dict[str, str]:
    """What a request to this process carries instead of a signature (``_skip_signing_for``):
    its date and credential scope, which moto and the stack read."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    headers = {
        "X-Amz-Date": stamp,
        "Authorization": (
            f"AWS4-HMAC-SHA256 Credential={access_key}/{stamp[:8]}/{region}/{service}/aws4_request, "
            f"SignedHeaders=host;x-amz-date, Signature={'0' * 64}"
        ),
    }
    if token:
        headers["X-Amz-Security-Token"] = token
    if service == "s3":
        headers["X-Amz-Content-SHA256"] = "UNSIGNED-PAYLOAD"
    return headers


def _headers(headers: Any) -> dict[str, str]:
    result = {}
    for name, value in headers.items():
        name = name.decode("latin-1") if isinstance(name, bytes) else str(name)
        result[name] = value.decode("latin-1") if isinstance(value, bytes) else str(value)
    return result


def _bytes(body: Any) -> bytes:
    if body is None:
        return b""
    if isinstance(body, bytes | bytearray):
        return bytes(body)
    if isinstance(body, str):
        return body.encode("utf-8")
    if hasattr(body, "read"):
        data = body.read()
        return data.encode("utf-8") if isinstance(data, str) else bytes(data)
    return b"".join(body)


class Clients:
    """boto3 clients for the stack's own endpoint, one per (service, region), with the local
    credentials; answered in-process once ``InProcessDispatch.install`` has run."""

    def __init__(self, endpoint_url: str) -> None:
        self.endpoint_url = endpoint_url
        self._clients: dict[tuple[str, str], Any] = {}
        self._lock = threading.Lock()

    def __call__(self, service: str, region: str) -> Any:
        with self._lock:
            if (service, region) not in self._clients:
                import boto3
                from botocore.config import Config

                session = boto3.session.Session(region_name=region, **LOCAL_CREDENTIALS)
                self._clients[(service, region)] = session.client(
                    service,
                    endpoint_url=self.endpoint_url,
                    config=Config(
                        signature_version="s3v4" if service == "s3" else None,
                        s3={"addressing_style": "path"},
                        retries={"mode": "standard", "max_attempts": 3},
                    ),
                )
            return self._clients[(service, region)]
