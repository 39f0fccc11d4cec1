"""What is deployed on the local stack, read once per deploy and kept until the next one.

The emulator needs each API's routes and keys, the Lambda runner each function's handler and
environment, S3 event delivery each bucket's notification wiring. They change only when a
deploy changes a stack, an API, its keys or a function, and every such change is a request
that this process serves itself. So the catalog reads each item on first use (through the
in-process clients, no HTTP), keeps it, and forgets a region's items when ``changed`` says
a request mutated CloudFormation, API Gateway or Lambda there (CloudFormation creates APIs
and functions inside moto, so a stack change forgets everything of its region).
"""

from __future__ import annotations

import io
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import parse_qs

from .wire import scope_of

T = TypeVar("T")
WATCHED = {"cloudformation", "apigateway", "lambda"}
_READ_ACTIONS = ("Describe", "List", "Get", "Validate", "Estimate", "Detect")
# CloudFormation actions after which a stack's resources are what its template says
STACK_ACTIONS = {"CreateStack", "UpdateStack", "ExecuteChangeSet"}


@dataclass(frozen=True)
class Change:
    """A request that changed deployed configuration."""

    service: str
    region: str | None  # None: the region is unknown, forget every region
    action: str

    @property
    def deployed_stack(self) -> bool:
        return self.service == "cloudformation" and self.action in STACK_ACTIONS


def change_of(environ: dict[str, Any]) -> Change | None:
    """The change a request makes to deployed configuration, or None for a read or a
    request to another service. Called before the request is served (its body is read from
    memory: the server has read it whole by then)."""
    scope = scope_of(environ)
    if scope is None or scope.service not in WATCHED:
        return None
    method = environ.get("REQUEST_METHOD", "GET").upper()
    if scope.service == "cloudformation":
        action = _query_action(environ)
        if not action or action.startswith(_READ_ACTIONS):
            return None
    elif method in {"GET", "HEAD", "OPTIONS"} or environ.get("PATH_INFO", "").endswith("/invocations"):
        return None
    else:
        action = method
    return Change(scope.service, scope.region, action)


def _query_action(environ: dict[str, Any]) -> str:
    query = parse_qs(environ.get("QUERY_STRING", ""))
    if "Action" in query:
        return query["Action"][0]
    stream = environ.get("wsgi.input")
    if "form-urlencoded" in environ.get("CONTENT_TYPE", "") and isinstance(stream, io.BytesIO):
        body = parse_qs(stream.getvalue().decode("utf-8", "replace"))
        return body.get("Action", [""])[0]
    return ""


class Catalog:
    """A thread-safe memo of deployed configuration, per region."""

    def __init__(self) -> None:
        # One lock for reads and loads: loads are rare (once per deploy and item) and quick
        # (in-process), and a thread that waits for one then finds its item loaded.
        self._lock = threading.RLock()
        self._items: dict[str | None, dict[Any, Any]] = {}
        self.loads = 0

    def get(self, region: str, key: Any, load: Callable[[], T]) -> T:
        with self._lock:
            items = self._items.setdefault(region, {})
            if key not in items:
                items[key] = load()
                self.loads += 1
            return items[key]

    def forget(self, region: str | None) -> None:
        """Forget what is known of ``region`` (of every region when None)."""
        with self._lock:
            if region is None:
                self._items.clear()
            else:
                self._items.pop(region, None)
