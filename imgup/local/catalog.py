"""What is deployed on the local stack, read once per deploy and kept until the next one.

The emulator needs each API's routes and keys, the Lambda runner each function's handler and
environment, S3 event delivery each bucket's notification wiring. They change only when a
deploy changes a stack, an API, its keys or a function, and every such change is a request
that this process serves itself. So the catalog reads each item on first use (through the
in-process clients, no HTTP), keeps it, and forgets a region's items when ``change_of`` says
a request mutated CloudFormation, API Gateway or Lambda there: a change to API Gateway only
its APIs' routes and keys, a change to Lambda only its functions, a stack change everything
of the region (CloudFormation creates APIs, functions and buckets inside moto). A deploy ends
with API Gateway calls (its key and usage plan): they leave the buckets' event wiring, read
from the templates, in place for the first upload.
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
OWNED = {"apigateway": frozenset({"routes", "keys"}), "lambda": frozenset({"function"})}
"""The kinds of item (the first part of a key) that a change to each service makes stale;
a change to any other watched service (CloudFormation) makes every item stale."""


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

    def forget(self, region: str | None, service: str | None = None) -> None:
        """Forget what a change to ``service`` (any service when None) may have made stale in
        ``region`` (in every region when None)."""
        owned = OWNED.get(service or "")
        with self._lock:
            regions = list(self._items) if region is None else [region]
            for name in regions:
                items = self._items.get(name)
                if items is None:
                    continue
                if owned is None:
                    del self._items[name]
                    continue
                for key in [key for key in items if _kind(key) in owned]:
                    del items[key]


def _kind(key: Any) -> Any:
    return key[0] if isinstance(key, tuple) else key
