"""The channel between the local stack and its handlers' process (imgup.local.worker)."""

from __future__ import annotations

import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from imgup.local import worker
from imgup.local.worker import Channel, ChannelClosed, RemoteError


class Pair:
    """Two channels over a socket pair, as the stack and its child hold them."""

    def __init__(self, answer_a: Any, answer_b: Any, inline_a: Any = None, inline_b: Any = None) -> None:
        left, right = socket.socketpair()
        self.closed = threading.Event()
        self.a = Channel(left, answer_a, inline=inline_a)
        self.b = Channel(right, answer_b, on_close=self.closed.set, inline=inline_b)

    def close(self) -> None:
        self.a.close()
        self.b.close()


@pytest.fixture
def pairs():
    made: list[Pair] = []

    def make(*args: Any, **kwargs: Any) -> Pair:
        made.append(Pair(*args, **kwargs))
        return made[-1]

    yield make
    for pair in made:
        pair.close()


def test_calls_go_both_ways_and_carry_bytes_and_structures(pairs) -> None:
    pair = pairs(
        lambda kind, args: {"kind": kind, "args": args},
        lambda kind, args: (kind, len(args[0]), args[1]["k"]),
    )
    body = bytes(range(256)) * 4096  # 1 MiB, every byte value
    assert pair.a.call("put", body, {"k": [1, None, "é"]}) == ("put", len(body), [1, None, "é"])
    assert pair.b.call("serve", "GET", b"") == {"kind": "serve", "args": ("GET", b"")}


def test_concurrent_calls_each_get_their_own_answer(pairs) -> None:
    def answer(kind: str, args: tuple[Any, ...]) -> Any:
        time.sleep(0.001 * (args[0] % 7))  # answers come back out of order
        return args[0] * 2

    pair = pairs(lambda kind, args: None, answer)
    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(lambda n: pair.a.call("double", n), range(200)))
    assert results == [n * 2 for n in range(200)]


def test_a_call_that_raises_gives_the_caller_its_type_and_message_only(pairs) -> None:
    def answer(kind: str, args: tuple[Any, ...]) -> Any:
        if kind == "invoke":
            raise KeyError(f"no such function (the event held {len(args[0])} fields)")
        return "fine"

    pair = pairs(lambda kind, args: None, answer)
    with pytest.raises(RemoteError) as raised:
        pair.a.call("invoke", {"body": "secret-body"})
    assert str(raised.value) == "KeyError: 'no such function (the event held 1 fields)'"
    assert raised.value.__cause__ is None and raised.value.__traceback__ is not None
    assert "secret-body" not in repr(raised.value)
    assert pair.a.call("again") == "fine"  # the channel still serves after a failure


def test_a_call_answered_inline_may_not_block_and_a_blocking_one_goes_to_the_pool(pairs) -> None:
    # The stack (a) answers its child's quick calls on its reading thread; a call that waits
    # for the child (a Lambda Invoke) must go to a pool thread, or the answer it waits for
    # would never be read.
    holder: dict[str, Pair] = {}

    def stack_answers(kind: str, args: tuple[Any, ...]) -> Any:
        if kind == "invoke-back":
            return holder["pair"].a.call("run", args[0])
        return f"served {args[0]}"

    def child_answers(kind: str, args: tuple[Any, ...]) -> Any:
        child = holder["pair"].b
        if kind == "run" and args[0] > 0:
            return [child.call("serve", args[0]), child.call("invoke-back", args[0] - 1)]
        return "leaf"

    holder["pair"] = pairs(stack_answers, child_answers, inline_a=lambda kind, args: kind == "serve")
    result: list[Any] = []
    caller = threading.Thread(target=lambda: result.append(holder["pair"].a.call("run", 2)), daemon=True)
    caller.start()
    caller.join(timeout=10)  # a deadlock fails here instead of hanging the suite
    assert result == [["served 2", ["served 1", "leaf"]]]


def test_when_the_other_side_goes_calls_waiting_and_new_fail_at_once(pairs) -> None:
    started = threading.Event()

    def slow(kind: str, args: tuple[Any, ...]) -> Any:
        started.set()
        time.sleep(30)

    pair = pairs(lambda kind, args: None, slow)
    with ThreadPoolExecutor(max_workers=1) as pool:
        waiting = pool.submit(pair.a.call, "invoke")
        assert started.wait(5)
        began = time.monotonic()
        pair.b.close()  # the child dies
        with pytest.raises(ChannelClosed):
            waiting.result(timeout=5)
    assert time.monotonic() - began < 5
    assert pair.closed.wait(5)  # the closing side learns it too
    for _ in range(100):
        if pair.a.closed:
            break
        time.sleep(0.01)
    with pytest.raises(ChannelClosed):
        pair.a.call("invoke")


@pytest.mark.parametrize(
    ("setting", "cores", "wanted"),
    [("", 2, True), ("", 1, False), ("inprocess", 8, False), ("process", 1, True), (" Process ", 1, True)],
)
def test_handlers_get_a_process_of_their_own_with_two_cores_unless_told(
    monkeypatch, setting, cores, wanted
) -> None:
    monkeypatch.setenv(worker.HANDLERS_ENV, setting)
    monkeypatch.setattr(worker.os, "sched_getaffinity", lambda pid: set(range(cores)))
    assert worker.handlers_process_wanted() is wanted
