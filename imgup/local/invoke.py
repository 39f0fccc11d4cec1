"""Lambda's Invoke API (``POST /2015-03-31/functions/<name>/invocations``), served by the
local stack itself: moto would run the function in Docker, which the local stack has not.

The deployed handlers call it through boto3 like any AWS API (in-process here, see
``imgup.local.inprocess``): the CompleteFunction invokes the ThumbnailFunction asynchronously
(``InvocationType=Event``) when an image becomes ready. As Lambda does, an asynchronous
invocation is accepted at once (202) and run in the background, and one that raises is tried
twice more (after 1 s and 2 s), then given up with a line in the log (Lambda would send it to
the function's dead-letter queue). ``RequestResponse`` runs the handler and answers its result;
``DryRun`` only checks that the function exists.

An asynchronous invocation waits for a quiet moment first: no request from outside the
process for ``wire.QUIET`` seconds (or ``wire.MAX_WAIT`` at most after it was accepted). On
AWS it would run in a Lambda of its own, beside the uploads; here it would take turns with
them on the stack's one core. So an upload of 1,000 files ends sooner, and the thumbnails
follow it.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import unquote

from .lambdas import LambdaRunner
from .wire import (
    MAX_WAIT,
    Answer,
    BodyError,
    Tally,
    aws_error,
    read_body,
    scope_of,
    status_line,
    wait_for_quiet,
)

log = logging.getLogger("imgup.local")
INVOKE_PATH = re.compile(r"^/2015-03-31/functions/(?P<name>[^/]+)/invocations$")
MAX_PAYLOAD = 256 * 1024  # Lambda's limit for an asynchronous invocation's payload
RETRY_DELAYS = (1.0, 2.0)


def invocation(environ: dict[str, Any]) -> str | None:
    """The function name (or ARN) that a request invokes, else None."""
    if environ.get("REQUEST_METHOD") != "POST":
        return None
    found = INVOKE_PATH.match(environ.get("PATH_INFO", ""))
    return unquote(found.group("name")) if found else None


class Invoker:
    def __init__(
        self,
        runner: LambdaRunner,
        workers: int = 2,
        retry_delays: tuple[float, ...] = RETRY_DELAYS,
        quiet_for: Callable[[], float] | None = None,
        max_wait: float = MAX_WAIT,
    ):
        self.runner = runner
        self.retry_delays = retry_delays
        self.quiet_for = quiet_for
        self.max_wait = max_wait
        self.accepted = Tally()
        self.settled = Tally()  # asynchronous invocations run to the end (done or given up)
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="lambda-async")

    def __call__(self, environ: dict[str, Any], name: str) -> Answer:
        scope = scope_of(environ)
        region = scope.region if scope else "us-east-1"
        try:
            function = self.runner.function(region, name)
        except Exception:  # moto: ResourceNotFoundException
            return aws_error(environ, 404, "ResourceNotFoundException", f"Function not found: {name}")
        try:
            payload = read_body(environ, MAX_PAYLOAD)
        except BodyError:
            return aws_error(environ, 413, "RequestTooLargeException", "Request payload is too large")
        try:
            event = json.loads(payload or b"{}")
        except ValueError:
            return aws_error(
                environ, 400, "InvalidRequestContentException", "Could not parse request body into json"
            )
        kind = environ.get("HTTP_X_AMZ_INVOCATION_TYPE", "RequestResponse")
        if kind == "DryRun":
            return status_line(204), {}, b""
        if kind == "Event":
            self.accepted.add()
            self._pool.submit(self._run_async, region, function, event, time.monotonic())
            return status_line(202), {"Content-Type": "application/json"}, b""
        result = self.runner.invoke(region, function, event)
        return (
            status_line(200),
            {"Content-Type": "application/json", "X-Amz-Executed-Version": "$LATEST"},
            (json.dumps(result).encode()),
        )

    @property
    def pending(self) -> int:
        """Asynchronous invocations accepted and not yet settled."""
        return self.accepted.value - self.settled.value

    def _run_async(self, region: str, function: Any, event: Any, accepted: float) -> None:
        try:
            wait_for_quiet(self.quiet_for, accepted, max_wait=self.max_wait)
            self._attempt(region, function, event)
        finally:
            self.settled.add()

    def _attempt(self, region: str, function: Any, event: Any) -> None:
        for attempt, delay in enumerate((0.0, *self.retry_delays)):
            time.sleep(delay)
            try:
                self.runner.invoke(region, function, event)
                return
            except Exception:
                log.exception("asynchronous invocation of %s failed (attempt %d)", function.name, attempt + 1)
        log.error(
            "asynchronous invocation of %s given up after %d attempts",
            function.name,
            1 + len(self.retry_delays),
        )

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=False)
