"""The handlers' own process: the deployed functions run beside moto, not on its core.

The local stack is one Python process, and Python runs one thread at a time in it (the GIL):
moto, the API Gateway emulator, the handlers and boto3's work for them all took turns on one
core while the machine's other core sat nearly idle. On AWS each function runs in a Lambda
of its own. Here the stack starts one child process that runs every function's handler
(``run_handler``), with its boto3 clients (serializing, parsing, presigning); moto and the
stack's own routing stay in the parent, which keeps all state.

The two talk over one socket pair, in both directions at once (``Channel``): the parent asks
the child to ``invoke`` a function, and the child's handlers send their S3 and DynamoDB
calls back to the parent as the in-process hook would have served them
(``InProcessDispatch.serve``), without HTTP. Each side answers the other's calls on its own
threads, so a handler that waits for moto never blocks another. Frames are pickled: both
ends are this package, started by the parent with the socket's other end inherited, and
nothing outside the two processes can reach it.

The child ends when the parent does (its end of the socket closes); the parent starts a new
child when the last one died. On a machine with one core the handlers stay in the parent
(``handlers_process_wanted``); ``IMGUP_LOCAL_HANDLERS=inprocess`` or ``=process`` chooses.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import logging
import os
import pickle
import socket
import subprocess
import sys
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit

from . import GC_THRESHOLDS
from .invoke import INVOKE_PATH

log = logging.getLogger("imgup.local")

HANDLERS_ENV = "IMGUP_LOCAL_HANDLERS"
CALL_TIMEOUT = 900.0  # seconds: Lambda's longest timeout; a call never waits longer
_HEADER = 8  # bytes of a frame's length
WORKERS = 32  # threads on each side that answer the other side's calls


def handlers_process_wanted() -> bool:
    """Whether the stack runs its handlers in a process of their own: by default when this
    process may use more than one core."""
    chosen = os.environ.get(HANDLERS_ENV, "").strip().lower()
    if chosen in {"inprocess", "process"}:
        return chosen == "process"
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    return cores > 1


class ChannelClosed(ConnectionError):
    """The other process is gone: a call in flight, or a new one, fails with this."""


class RemoteError(RuntimeError):
    """A call raised on the other side. Only the exception's type and message travel (never
    the request, nor a traceback with its locals)."""


class Channel:
    """Calls in both directions over one connected socket.

    A frame is an 8-byte length and a pickled tuple ``(number, kind, payload)``: a call
    (``kind`` names what to run, ``payload`` its arguments) or its answer (``"ok"`` with the
    result, ``"error"`` with a message), matched to the call by its number. ``answer`` runs
    the other side's calls, on a pool of threads."""

    def __init__(
        self,
        sock: socket.socket,
        answer: Callable[[str, tuple[Any, ...]], Any],
        on_close: Callable[[], None] | None = None,
        workers: int = WORKERS,
        inline: Callable[[str, tuple[Any, ...]], bool] | None = None,
    ) -> None:
        self._sock = sock
        self._inline = inline
        self._answer = answer
        self._on_close = on_close
        self._send_lock = threading.Lock()
        self._numbers = itertools.count(1)
        self._waiting: dict[int, Future[Any]] = {}
        self._waiting_lock = threading.Lock()
        self._closed = False
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="channel")
        self._reader = threading.Thread(target=self._read_all, name="channel-reader", daemon=True)
        self._reader.start()

    @property
    def closed(self) -> bool:
        return self._closed

    def call(self, kind: str, *args: Any, timeout: float = CALL_TIMEOUT) -> Any:
        """Run ``kind(*args)`` on the other side and return its result."""
        number = next(self._numbers)
        future: Future[Any] = Future()
        with self._waiting_lock:
            if self._closed:
                raise ChannelClosed("the other process is gone")
            self._waiting[number] = future
        try:
            self._send((number, kind, args))
        except OSError as exc:
            with self._waiting_lock:
                self._waiting.pop(number, None)
            raise ChannelClosed("the other process is gone") from exc
        return future.result(timeout)

    def close(self) -> None:
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._sock.close()

    def _send(self, frame: tuple[Any, ...]) -> None:
        data = pickle.dumps(frame, protocol=pickle.HIGHEST_PROTOCOL)
        with self._send_lock:
            self._sock.sendall(len(data).to_bytes(_HEADER, "big") + data)

    def _read_all(self) -> None:
        reader = self._sock.makefile("rb")
        try:
            while True:
                header = reader.read(_HEADER)
                if len(header) < _HEADER:
                    break
                data = reader.read(int.from_bytes(header, "big"))
                # Pickle: the socket is a pair that only this process and its own child hold
                # (nothing listens), and both ends run this package.
                number, kind, payload = pickle.loads(data)  # noqa: S301
                if kind in {"ok", "error"}:
                    self._settle(number, kind, payload)
                elif self._inline is not None and self._inline(kind, payload):
                    self._run(number, kind, payload)
                else:
                    self._pool.submit(self._run, number, kind, payload)
        except (OSError, ValueError, EOFError, pickle.UnpicklingError):
            pass
        finally:
            self._shut()

    def _settle(self, number: int, kind: str, payload: Any) -> None:
        with self._waiting_lock:
            future = self._waiting.pop(number, None)
        if future is None:
            return
        if kind == "ok":
            future.set_result(payload)
        else:
            future.set_exception(RemoteError(payload))

    def _run(self, number: int, kind: str, args: tuple[Any, ...]) -> None:
        try:
            reply: tuple[Any, ...] = (number, "ok", self._answer(kind, args))
        except Exception as exc:  # the caller gets what failed; this side keeps serving
            reply = (number, "error", f"{type(exc).__name__}: {exc}"[:2000])
        try:
            self._send(reply)
        except OSError:
            pass  # the caller is gone

    def _shut(self) -> None:
        with self._waiting_lock:
            self._closed = True
            waiting, self._waiting = self._waiting, {}
        for future in waiting.values():
            future.set_exception(ChannelClosed("the other process is gone"))
        self._pool.shutdown(wait=False, cancel_futures=True)
        if self._on_close is not None:
            self._on_close()


class HandlersProcess:
    """The parent's side: starts the child (again, when it died) and calls it."""

    def __init__(self, endpoint_url: str, serve: Callable[..., Any], log_path: str | None = None) -> None:
        self.endpoint_url = endpoint_url
        self._serve = serve  # InProcessDispatch.serve: (method, url, headers, body) -> answer
        self._log_path = log_path
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        self._channel: Channel | None = None
        self._stopped = False

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def invoke(self, function: Any, event: Any, environ: dict[str, str]) -> Any:
        return self._connected().call("invoke", function, event, environ)

    def warm(self, environ: dict[str, str]) -> None:
        self._connected().call("warm", environ)

    def _inline(self, kind: str, args: tuple[Any, ...]) -> bool:
        """Whether the child's call is answered on the channel's reading thread: its S3 and
        DynamoDB calls are, one after another. This process's threads all take turns on one
        core; a call handed to a pool thread waited behind every request being served (tens
        of milliseconds per call, measured) and cost a thread switch more. A Lambda Invoke
        may wait for the child, whose answer that thread must be free to read: it goes to
        the pool."""
        return kind == "serve" and not INVOKE_PATH.match(urlsplit(args[1]).path)

    def _answer(self, kind: str, args: tuple[Any, ...]) -> Any:
        if kind == "serve":
            return self._serve(*args)
        raise LookupError(f"the stack answers no call {kind!r}")

    def _connected(self) -> Channel:
        with self._lock:
            if self._stopped:
                raise ChannelClosed("the local stack is stopping")
            if self._channel is None or self._channel.closed:
                self._start()
            assert self._channel is not None
            return self._channel

    def _start(self) -> None:
        if self._process is not None:
            code = self._process.poll()
            if code is None:
                self._process.kill()
            self._process.wait()
            log.warning("the handlers' process ended (code %s); starting another", self._process.returncode)
        parent, child = socket.socketpair()
        command = [sys.executable, "-P", "-m", "imgup.local.worker", "--fd", str(child.fileno())]
        command += ["--endpoint", self.endpoint_url]
        if self._log_path:
            command += ["--log", self._log_path]
        try:
            self._process = subprocess.Popen(
                command, pass_fds=[child.fileno()], stdin=subprocess.DEVNULL, close_fds=True
            )
        finally:
            child.close()
        self._channel = Channel(parent, self._answer, inline=self._inline)
        log.info("handlers run in process %s", self._process.pid)

    def shutdown(self, wait: float = 5.0) -> None:
        with self._lock:
            self._stopped = True
            channel, process = self._channel, self._process
        if channel is not None:
            channel.close()
        if process is not None:
            try:
                process.wait(wait)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _serve_child(sock: socket.socket, endpoint_url: str) -> None:
    """The child: runs handlers, and sends their calls to the stack back to the parent."""
    from .inprocess import InProcessDispatch
    from .lambdas import run_handler, warm_handler_clients

    done = threading.Event()
    holder: dict[str, Channel] = {}

    class ToParent(InProcessDispatch):
        def serve(self, method: str, url: str, headers: dict[str, str], body: bytes) -> Any:
            return holder["channel"].call("serve", method, url, headers, body)

    def answer(kind: str, args: tuple[Any, ...]) -> Any:
        if kind == "invoke":
            return run_handler(*args)
        if kind == "warm":
            return warm_handler_clients(*args)
        raise LookupError(f"the handlers' process answers no call {kind!r}")

    ToParent(endpoint_url, app=None).install()  # type: ignore[arg-type]
    holder["channel"] = Channel(sock, answer, on_close=done.set)
    done.wait()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m imgup.local.worker")
    parser.add_argument("--fd", type=int, required=True)
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--log")
    args = parser.parse_args(argv)
    if args.log:
        logging.basicConfig(
            filename=args.log,
            level=logging.INFO,
            format="%(asctime)s %(levelname)s %(name)s [handlers] %(message)s",
        )
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when this process ends
    gc.set_threshold(*GC_THRESHOLDS)
    sock = socket.socket(fileno=args.fd)
    _serve_child(sock, args.endpoint)
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)  # as the parent: no object-by-object teardown


if __name__ == "__main__":
    main()
