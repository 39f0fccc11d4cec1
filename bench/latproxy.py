"""A forwarding HTTP/1.1 proxy on 127.0.0.1 that adds a fixed delay to every request.

    .venv/bin/python bench/latproxy.py http://127.0.0.1:PORT --delay-ms 30   # until Ctrl-C

It stands for the network between a client and the cloud: each request waits ``delay``
seconds once its head has arrived, then goes on to the upstream (the local stack). It is
built so that it does not become the bottleneck itself: one asyncio loop in a thread,
keep-alive towards the client (and towards the upstream when the upstream keeps connections
open; werkzeug closes every one), bodies streamed in 64 KiB pieces both ways, never buffered
whole. Every wait is bounded (``io_timeout`` per read or write, ``idle_timeout`` between
requests on a kept-alive connection, ``MAX_REQUESTS`` per connection, ``MAX_HEAD`` bytes of
head, ``MAX_REWRITE`` bytes of an answer that it rewrites).

So that imgup's uploads come through it as well, it rewrites the presigned ``uploadUrl`` in
the answers of ``POST .../upload`` (``{"uploadUrl"}``) and ``POST .../uploads``
(``{"uploads": [{"uploadUrl"}]}``) to point at itself. A presigned URL signs the host it was
made for, so a request that is not signed in its headers (a presigned PUT, an API call) is
forwarded with the upstream's ``Host``; a request signed in its ``Authorization`` header
(``aws``, ``rclone``) keeps the ``Host`` its client signed, which is the proxy's.

``Expect: 100-continue`` is answered by the proxy itself (botocore waits up to 1 s for it).
``counts`` holds the requests seen, by kind: ``api`` (paths under ``/_api/``) and
``storage`` (everything else).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import threading
import time
from collections import Counter
from typing import Any
from urllib.parse import urlsplit

CHUNK = 64 * 1024
MAX_HEAD = 64 * 1024
MAX_HEADERS = 200
MAX_REQUESTS = 100_000
MAX_REWRITE = 16 * 1024 * 1024
MAX_BODY = 1024**3
MAX_CHUNKS = 1_000_000
MAX_INTERIM = 5  # 1xx answers skipped before the real one
HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "te", "upgrade", "expect", "trailer"}
REWRITTEN = ("/upload", "/uploads")


class ProxyError(Exception):
    """A request or answer that the proxy cannot relay (bad framing, too large, timed out)."""


Headers = list[tuple[str, str]]


def _header(headers: Headers, name: str) -> str | None:
    name = name.lower()
    for key, value in headers:
        if key.lower() == name:
            return value
    return None


def _parse_head(data: bytes) -> tuple[str, Headers]:
    lines = data.decode("latin-1").split("\r\n")
    headers: Headers = []
    for line in lines[1:]:
        if not line:
            continue
        if len(headers) >= MAX_HEADERS:
            raise ProxyError("too many headers")
        name, sep, value = line.partition(":")
        if not sep:
            raise ProxyError(f"a malformed header line: {line[:80]!r}")
        headers.append((name.strip(), value.strip()))
    return lines[0], headers


def _head(first: str, headers: Headers) -> bytes:
    return (first + "\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers) + "\r\n").encode("latin-1")


def rewrite_upload_urls(data: bytes, upstream: str, proxy: str) -> bytes:
    """An answer of ``POST /upload`` or ``POST /uploads`` whose upload URLs point at the proxy
    (unchanged when it holds none of the upstream's)."""
    try:
        body = json.loads(data)
    except ValueError:
        return data
    if not isinstance(body, dict):
        return data
    grants = [body] + [g for g in body.get("uploads") or [] if isinstance(g, dict)]
    changed = False
    for grant in grants:
        url = grant.get("uploadUrl")
        if isinstance(url, str) and url.startswith(upstream + "/"):
            grant["uploadUrl"] = proxy + url[len(upstream) :]
            changed = True
    return json.dumps(body).encode() if changed else data


class LatencyProxy:
    """Forwards to ``upstream`` (``http://127.0.0.1:PORT``), adding ``delay`` seconds to every
    request. Use it as a context manager; ``url`` is where it listens."""

    def __init__(
        self,
        upstream: str,
        delay: float = 0.030,
        *,
        io_timeout: float = 60.0,
        idle_timeout: float = 30.0,
    ) -> None:
        parts = urlsplit(upstream)
        if parts.scheme != "http" or parts.hostname != "127.0.0.1" or not parts.port:
            raise ValueError(f"the proxy forwards only to http://127.0.0.1:PORT, not {upstream!r}")
        self.upstream = upstream.rstrip("/")
        self.upstream_port = parts.port
        self.delay = delay
        self.io_timeout = io_timeout
        self.idle_timeout = idle_timeout
        self.url = ""
        self.counts: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.base_events.Server | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._thread = threading.Thread(target=self._loop.run_forever, name="latproxy", daemon=True)

    # --- life cycle (called from the owning thread) -------------------------------------

    def __enter__(self) -> LatencyProxy:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(self._listen(), self._loop)
        port = future.result(timeout=10)
        self.url = f"http://127.0.0.1:{port}"

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        if not self._thread.is_alive():
            self._loop.close()

    def snapshot(self) -> dict[str, int]:
        """The requests seen so far, by kind."""
        with self._lock:
            return dict(self.counts)

    async def _listen(self) -> int:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0, limit=MAX_HEAD)
        return int(self._server.sockets[0].getsockname()[1])

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=5)

    # --- one client connection ----------------------------------------------------------

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        try:
            for served in range(MAX_REQUESTS):
                timeout = self.idle_timeout if served else self.io_timeout
                head = await self._read_head(reader, timeout)
                if head is None:
                    return
                keep, upstream = await self._exchange(head, reader, writer, upstream)
                if not keep:
                    return
        except (TimeoutError, ProxyError, OSError, asyncio.IncompleteReadError) as exc:
            with self._lock:
                self.errors[type(exc).__name__] += 1
        except asyncio.CancelledError:
            pass
        finally:
            self._tasks.discard(task)
            for stream in (writer, upstream[1] if upstream else None):
                if stream is not None:
                    stream.close()
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(stream.wait_closed(), 1)

    async def _read_head(self, reader: asyncio.StreamReader, timeout: float) -> bytes | None:
        """The head of the next message, or None when the peer closed between messages."""
        try:
            return await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
        except asyncio.IncompleteReadError as exc:
            if exc.partial:
                raise ProxyError("the connection closed inside a message head") from None
            return None
        except asyncio.LimitOverrunError:
            raise ProxyError(f"a message head over {MAX_HEAD} bytes") from None

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", self.upstream_port, limit=MAX_HEAD), self.io_timeout
        )

    async def _exchange(
        self,
        head: bytes,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None,
    ) -> tuple[bool, tuple[asyncio.StreamReader, asyncio.StreamWriter] | None]:
        """Relay one request and its answer; (keep the client connection, the upstream one)."""
        first, headers = _parse_head(head)
        method, target, version = (first.split(" ", 2) + ["", ""])[:3]
        path = urlsplit(target).path
        with self._lock:
            self.counts["api" if path.startswith("/_api/") else "storage"] += 1
        client_keeps = version == "HTTP/1.1" and (_header(headers, "connection") or "").lower() != "close"
        expects = (_header(headers, "expect") or "").lower() == "100-continue"

        await asyncio.sleep(self.delay)

        signed_in_headers = (_header(headers, "authorization") or "").startswith("AWS4-HMAC-SHA256")
        forwarded = [(k, v) for k, v in headers if k.lower() not in HOP_BY_HOP | {"host"}]
        host = _header(headers, "host") if signed_in_headers else None
        forwarded.insert(0, ("Host", host or f"127.0.0.1:{self.upstream_port}"))
        if upstream is None or upstream[0].at_eof():
            if upstream is not None:
                upstream[1].close()
            try:
                upstream = await self._connect()
            except (TimeoutError, OSError):
                writer.write(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                await asyncio.wait_for(writer.drain(), self.io_timeout)
                return False, None
        up_reader, up_writer = upstream
        if expects:
            writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        up_writer.write(_head(f"{method} {target} HTTP/1.1", forwarded))
        await self._relay_body(reader, up_writer, headers, request=True)

        version, status, reason, answer = await self._read_answer(up_reader)
        connection = (_header(answer, "connection") or "").lower()
        upstream_keeps = connection == "keep-alive" or (version == "HTTP/1.1" and connection != "close")
        rewrite = method == "POST" and path.endswith(REWRITTEN) and status == 200
        bodiless = method == "HEAD" or status in (204, 304)
        framed = bodiless or _header(answer, "content-length") is not None or _is_chunked(answer)
        keep = client_keeps and framed
        relayed = [(k, v) for k, v in answer if k.lower() not in HOP_BY_HOP]
        if not keep:
            relayed.append(("Connection", "close"))
        if rewrite and not bodiless:
            data = await self._read_whole(up_reader, answer)
            data = rewrite_upload_urls(data, self.upstream, self.url)
            relayed = [(k, v) for k, v in relayed if k.lower() not in {"content-length", "transfer-encoding"}]
            relayed.append(("Content-Length", str(len(data))))
            writer.write(_head(f"HTTP/1.1 {status} {reason}", relayed) + data)
        else:
            writer.write(_head(f"HTTP/1.1 {status} {reason}", relayed))
            if not bodiless:
                await self._relay_body(up_reader, writer, answer, request=False)
        await asyncio.wait_for(writer.drain(), self.io_timeout)
        if not upstream_keeps or not framed:
            up_writer.close()
            upstream = None
        return keep, upstream

    async def _read_answer(self, up_reader: asyncio.StreamReader) -> tuple[str, int, str, Headers]:
        """The version, status, reason and headers of the upstream's answer (interim 1xx
        answers skipped)."""
        for _ in range(MAX_INTERIM + 1):
            head = await self._read_head(up_reader, self.io_timeout)
            if head is None:
                raise ProxyError("the upstream closed the connection without answering")
            first, headers = _parse_head(head)
            version, code, reason = (first.split(" ", 2) + ["", ""])[:3]
            if not code.isdigit():
                raise ProxyError(f"a malformed status line: {first[:80]!r}")
            if not 100 <= int(code) < 200:
                return version, int(code), reason, headers
        raise ProxyError(f"more than {MAX_INTERIM} interim answers")

    async def _read(self, reader: asyncio.StreamReader, size: int) -> bytes:
        data = await asyncio.wait_for(reader.read(size), self.io_timeout)
        if not data:
            raise ProxyError("the connection closed inside a body")
        return data

    async def _relay_body(
        self, source: asyncio.StreamReader, sink: asyncio.StreamWriter, headers: Headers, *, request: bool
    ) -> None:
        """Copy a message body as it comes, keeping its framing (length, chunks, or until the
        source closes, for an answer without either)."""
        length = _header(headers, "content-length")
        if _is_chunked(headers):
            await self._relay_chunks(source, sink)
        elif length is not None:
            left = _length(length)
            while left > 0:
                data = await self._read(source, min(CHUNK, left))
                left -= len(data)
                sink.write(data)
                await asyncio.wait_for(sink.drain(), self.io_timeout)
        elif not request:  # an answer that ends when its connection does
            for _ in range(MAX_BODY // CHUNK):
                data = await asyncio.wait_for(source.read(CHUNK), self.io_timeout)
                if not data:
                    return
                sink.write(data)
                await asyncio.wait_for(sink.drain(), self.io_timeout)
            raise ProxyError("an unframed answer too long to relay")

    async def _relay_chunks(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        for _ in range(MAX_CHUNKS):
            line = await asyncio.wait_for(source.readuntil(b"\r\n"), self.io_timeout)
            sink.write(line)
            size = int(line.split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                for _ in range(MAX_HEADERS):  # trailers, then the empty line
                    trailer = await asyncio.wait_for(source.readuntil(b"\r\n"), self.io_timeout)
                    sink.write(trailer)
                    if trailer == b"\r\n":
                        return
                raise ProxyError("too many trailers")
            left = size + 2  # the data and its CRLF
            while left > 0:
                data = await self._read(source, min(CHUNK, left))
                left -= len(data)
                sink.write(data)
                await asyncio.wait_for(sink.drain(), self.io_timeout)
        raise ProxyError("too many chunks")

    async def _read_whole(self, source: asyncio.StreamReader, headers: Headers) -> bytes:
        """A (small) answer body whole, without its framing."""
        length = _header(headers, "content-length")
        if _is_chunked(headers):
            parts: list[bytes] = []
            total = 0
            for _ in range(MAX_CHUNKS):
                line = await asyncio.wait_for(source.readuntil(b"\r\n"), self.io_timeout)
                size = int(line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    for _ in range(MAX_HEADERS):
                        if await asyncio.wait_for(source.readuntil(b"\r\n"), self.io_timeout) == b"\r\n":
                            return b"".join(parts)
                    raise ProxyError("too many trailers")
                total += size
                if total > MAX_REWRITE:
                    raise ProxyError("an answer too large to rewrite")
                parts.append(await asyncio.wait_for(source.readexactly(size + 2), self.io_timeout))
                parts[-1] = parts[-1][:-2]
            raise ProxyError("too many chunks")
        if length is None:
            raise ProxyError("an answer to rewrite without a length")
        size = _length(length)
        if size > MAX_REWRITE:
            raise ProxyError("an answer too large to rewrite")
        return await asyncio.wait_for(source.readexactly(size), self.io_timeout)


def _is_chunked(headers: Headers) -> bool:
    return "chunked" in (_header(headers, "transfer-encoding") or "").lower()


def _length(value: str) -> int:
    try:
        length = int(value)
    except ValueError:
        raise ProxyError(f"a bad Content-Length: {value[:40]!r}") from None
    if length < 0:
        raise ProxyError(f"a bad Content-Length: {value[:40]!r}")
    return length


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("upstream", help="http://127.0.0.1:PORT")
    parser.add_argument("--delay-ms", type=float, default=30.0, help="added to every request (default 30)")
    args = parser.parse_args(argv)
    with LatencyProxy(args.upstream, args.delay_ms / 1000) as proxy:
        print(f"{proxy.url} -> {proxy.upstream}, +{args.delay_ms:g} ms per request; Ctrl-C stops", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            while True:
                time.sleep(3600)


if __name__ == "__main__":
    main()
