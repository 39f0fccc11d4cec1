"""The gallery page's own server, for ``imgup gallery``: 127.0.0.1 only, standard library only.

The page (``imgup/web/``: plain HTML, CSS and JavaScript shipped in the package, no build step,
nothing loaded from elsewhere) talks to the deployed API itself, from the browser, so the
API's CORS answers and the bucket's CORS rule are what make it work. This server only hands
the page its files and, to the page alone, what it needs to reach the API:

    GET /?session=TOKEN   sets this run's session cookie and redirects to /
    GET /                 index.html (also /gallery.css, /gallery.js, /favicon.svg)
    GET /config.json      the API URL, the API key and the deployment's limits; only with the
                          session cookie, to a same-origin request, on this server's own Host

The session token is made fresh for each run and travels only in the link that the command
opens (and prints); the API key is never in a URL, a file of the repository or a log. The
cookie is HttpOnly and SameSite=Strict, and its name carries the port, since cookies are
shared by every port of 127.0.0.1. A Host other than 127.0.0.1:PORT or localhost:PORT is
refused, so a DNS-rebinding page cannot read the key, and every answer forbids framing and
sends no Referer (the page shows presigned URLs).
"""

from __future__ import annotations

import errno
import json
import secrets
import signal
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from http.cookies import CookieError, SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, urlsplit

from .backend import rules

HOST = "127.0.0.1"
PAGE_FILES = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/index.html": ("index.html", "text/html; charset=utf-8"),
    "/gallery.css": ("gallery.css", "text/css; charset=utf-8"),
    "/gallery.js": ("gallery.js", "text/javascript; charset=utf-8"),
    "/favicon.svg": ("favicon.svg", "image/svg+xml"),
}
CONFIG_PATH = "/config.json"
PAGE_SIZE = 30
"""Images the page asks for per request (the API allows 1 to 100)."""


class PortInUse(Exception):
    """The port asked for is taken on 127.0.0.1."""


@dataclass(frozen=True)
class PageConfig:
    """What the page needs to use a deployment: where its API is, its key, and its limits."""

    api_url: str
    api_key: str
    stack_name: str
    target: str
    region: str
    max_upload_bytes: int
    storage_origins: tuple[str, ...] = ()
    """Origins the browser reaches for presigned PUTs and GETs (local stack: its endpoint)."""
    extra: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "apiUrl": self.api_url.rstrip("/"),
            "apiKey": self.api_key,
            "stackName": self.stack_name,
            "target": self.target,
            "region": self.region,
            "maxUploadBytes": self.max_upload_bytes,
            "maxFileNameChars": rules.MAX_FILE_NAME_CHARS,
            "maxBatch": rules.MAX_BATCH,
            "pageSize": PAGE_SIZE,
            "types": [
                {
                    "type": file_type,
                    "label": rules.TYPE_LABELS[file_type],
                    "signatures": [
                        [[offset, magic.hex()] for offset, magic in parts]
                        for parts in rules.SIGNATURES[file_type]
                    ],
                }
                for file_type in sorted(rules.ALLOWED_TYPES)
            ],
            "tags": {
                "maxTags": rules.MAX_TAGS,
                "maxKeyChars": rules.MAX_TAG_KEY_CHARS,
                "maxValueChars": rules.MAX_TAG_VALUE_CHARS,
                "keyPattern": rules.TAG_KEY_PATTERN.pattern,
            },
            **self.extra,
        }


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def storage_origins(api_url: str, endpoint_url: str | None) -> tuple[str, ...]:
    """Where presigned URLs point: the local stack's endpoint, or S3 in the API's partition
    (``https://*.amazonaws.com``, from the API's host ``<id>.execute-api.<region>.<suffix>``)."""
    if endpoint_url:
        return (origin_of(endpoint_url),)
    host = urlsplit(api_url).hostname or ""
    _, marker, rest = host.partition(".execute-api.")
    suffix = rest.partition(".")[2] if marker else ""
    return (f"https://*.{suffix or 'amazonaws.com'}",)


def content_security_policy(config: PageConfig) -> str:
    """Scripts and styles from this server only; the API and storage as the only other peers."""
    peers = " ".join(dict.fromkeys([origin_of(config.api_url), *config.storage_origins]))
    return (
        "default-src 'none'; script-src 'self'; style-src 'self'; "
        f"img-src 'self' blob: data: {peers}; connect-src 'self' {peers}; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )


def _page_file(name: str) -> bytes:
    return resources.files("imgup").joinpath("web", name).read_bytes()


class GalleryServer:
    """Serves the page on 127.0.0.1:``port`` (0: a free port) until ``shutdown``."""

    def __init__(self, config: PageConfig, port: int = 0, *, read_file: Callable[[str], bytes] = _page_file):
        self.config = config
        self.token = secrets.token_urlsafe(24)
        self._files = {path: (read_file(name), kind) for path, (name, kind) in PAGE_FILES.items()}
        try:
            self._httpd = ThreadingHTTPServer((HOST, port), _handler_for(self))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                raise PortInUse(str(exc)) from None
            raise
        self._httpd.daemon_threads = True
        self.port = int(self._httpd.server_address[1])
        self.csp = content_security_policy(config)

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}/"

    @property
    def launch_url(self) -> str:
        """The link to open: it carries this run's session token (not the API key)."""
        return f"{self.url}?session={self.token}"

    @property
    def cookie_name(self) -> str:
        return f"imgup_gallery_{self.port}"

    def serve_until_stopped(self) -> None:
        """Serve until Ctrl-C or SIGTERM, then close the socket (in the main thread: the signal
        handler is set there)."""
        previous: dict[int, Any] = {}
        if threading.current_thread() is threading.main_thread():
            # Ctrl-C stops the server even where the shell started it with SIGINT ignored.
            previous[signal.SIGINT] = signal.signal(signal.SIGINT, signal.default_int_handler)
            previous[signal.SIGTERM] = signal.signal(signal.SIGTERM, _raise_interrupt)
        try:
            self._httpd.serve_forever(poll_interval=0.2)
        except KeyboardInterrupt:
            pass
        finally:
            for number, handler in previous.items():
                signal.signal(number, handler)
            self.close()

    def serve_in_thread(self) -> threading.Thread:
        thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True
        )
        thread.start()
        return thread

    def shutdown(self) -> None:
        self._httpd.shutdown()
        self.close()

    def close(self) -> None:
        self._httpd.server_close()

    # --- what a request gets -------------------------------------------------------------

    def allowed_hosts(self) -> frozenset[str]:
        return frozenset({f"{HOST}:{self.port}", f"localhost:{self.port}"})

    def has_session(self, cookie_header: str | None) -> bool:
        if not cookie_header:
            return False
        try:
            jar = SimpleCookie(cookie_header)
        except CookieError:
            return False
        morsel = jar.get(self.cookie_name)
        return morsel is not None and secrets.compare_digest(morsel.value, self.token)

    def answer(
        self, method: str, target: str, headers: Mapping[str, str]
    ) -> tuple[int, dict[str, str], bytes]:
        """(status, headers, body) for a request; the handler only writes it out."""
        if headers.get("host", "").lower() not in self.allowed_hosts():
            return _text(HTTPStatus.MISDIRECTED_REQUEST, "This server answers only at " + self.url)
        if method not in {"GET", "HEAD"}:
            status, extra, body = _text(HTTPStatus.METHOD_NOT_ALLOWED, "Only GET is served here.")
            return status, {**extra, "Allow": "GET, HEAD"}, body
        parts = urlsplit(target)
        if parts.path == "/" and "session" in parse_qs(parts.query):
            return self._start_session(parse_qs(parts.query)["session"][-1])
        if parts.path == CONFIG_PATH:
            return self._config(headers)
        found = self._files.get(parts.path)
        if found is None:
            return _text(HTTPStatus.NOT_FOUND, "Not found. The gallery is at " + self.url)
        body, kind = found
        extra = {"Content-Type": kind, "Cache-Control": "no-cache"}
        if kind.startswith("text/html"):
            extra["Content-Security-Policy"] = self.csp
        return HTTPStatus.OK, extra, body

    def _start_session(self, token: str) -> tuple[int, dict[str, str], bytes]:
        if not secrets.compare_digest(token, self.token):
            return _text(
                HTTPStatus.FORBIDDEN,
                "This link is not this gallery's: open the link that `imgup gallery` printed last.",
            )
        cookie = f"{self.cookie_name}={self.token}; Path=/; HttpOnly; SameSite=Strict"
        return HTTPStatus.SEE_OTHER, {"Location": "/", "Set-Cookie": cookie, "Content-Length": "0"}, b""

    def _config(self, headers: Mapping[str, str]) -> tuple[int, dict[str, str], bytes]:
        site = headers.get("sec-fetch-site")
        origin = headers.get("origin")
        if (site is not None and site not in {"same-origin", "none"}) or (
            origin is not None and origin.rstrip("/") not in {f"http://{h}" for h in self.allowed_hosts()}
        ):
            return _json(HTTPStatus.FORBIDDEN, {"error": "Only the gallery page may read its configuration."})
        if not self.has_session(headers.get("cookie")):
            return _json(
                HTTPStatus.FORBIDDEN,
                {
                    "error": "This page was not opened through imgup gallery's link, which "
                    "carries the session: open the link that `imgup gallery` printed."
                },
            )
        return _json(HTTPStatus.OK, self.config.to_json())


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


_COMMON_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
}


def _text(status: int, message: str) -> tuple[int, dict[str, str], bytes]:
    return (
        status,
        {"Content-Type": "text/plain; charset=utf-8", "Cache-Control": "no-store"},
        message.encode(),
    )


def _json(status: int, body: Mapping[str, Any]) -> tuple[int, dict[str, str], bytes]:
    data = json.dumps(body, ensure_ascii=False).encode()
    return status, {"Content-Type": "application/json", "Cache-Control": "no-store"}, data


def _handler_for(server: GalleryServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "imgup-gallery"
        sys_version = ""
        protocol_version = "HTTP/1.1"

        def _serve(self) -> None:
            headers = {k.lower(): v for k, v in self.headers.items()}
            status, extra, body = server.answer(self.command, self.path, headers)
            if self.command not in {"GET", "HEAD"}:  # its body is not read: end the connection
                self.close_connection = True
                extra = {**extra, "Connection": "close"}
            self.send_response(status)
            for name, value in {**_COMMON_HEADERS, **extra}.items():
                self.send_header(name, value)
            if "Content-Length" not in extra:
                self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = do_OPTIONS = do_PATCH = _serve  # noqa: N815

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass  # the session token is in a URL: no access log

    return Handler
