"""Client of the image API (the deployed REST API or the local emulator).

One ``httpx.Client`` is passed in (tests give it a ``MockTransport`` or point it at a fault
proxy); the API key travels only in this module's request headers, never in messages. Calls
that are safe to repeat are retried on 429/5xx and transport errors with capped exponential
backoff and full jitter (``RetryPolicy``); ``POST /upload`` is retried too, since an extra
pending record is invisible and expires by TTL.
"""

from __future__ import annotations

import random
import sys
import threading
import time
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from .backend.rules import ListFilter
from .errors import ApiError, RouteMissing, UploadRejected

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
MAX_PAGES = 100_000
LIST_PAGE = 1000
"""The page a client that lists everything asks for (the API's largest)."""
FIRST_PAGE = 100
"""The first page of a long listing: smaller, so that the first rows come at once."""
OLD_MAX_PAGE = 100
"""The largest page of a stack deployed before pages of 1000."""
MAX_BATCH = 100
"""The most items one batch request (``POST /uploads``, ``POST /uploads/complete``) takes."""


@dataclass
class RetryPolicy:
    """Retries after the first attempt, with delays ``uniform(0, min(cap, base * 2**n))``."""

    retries: int = 4
    base: float = 0.25
    cap: float = 8.0
    sleep: Callable[[float], None] = time.sleep
    jitter: Callable[[], float] = field(default=random.random)

    def delays(self) -> Iterator[float]:
        for attempt in range(self.retries):
            yield self.jitter() * min(self.cap, self.base * 2**attempt)


def import_httpx() -> Any:
    """httpx, imported without its command-line tool.

    ``httpx/__init__`` imports ``httpx._main`` (the ``httpx`` command: click, pygments, rich's
    syntax highlighting), about 30 ms of every imgup command that talks to the API
    (encode/httpx#3547). A placeholder module without ``main`` makes that import fail as it
    does when httpx's CLI extras are missing, and httpx falls back to its stub; the
    placeholder is removed at once, so that an explicit ``import httpx._main`` still works.
    """
    if "httpx" in sys.modules:
        return sys.modules["httpx"]
    placeholder = types.ModuleType("httpx._main")
    sys.modules.setdefault("httpx._main", placeholder)
    try:
        import httpx
    finally:
        if sys.modules.get("httpx._main") is placeholder:
            del sys.modules["httpx._main"]
    return httpx


def transport_errors() -> tuple[type[BaseException], ...]:
    return (import_httpx().TransportError,)


def describe_transport_error(exc: BaseException) -> str:
    httpx = import_httpx()
    if isinstance(exc, httpx.TimeoutException):
        return "the request timed out"
    if isinstance(exc, httpx.ConnectError):
        return "the connection was refused"
    return f"the connection failed ({type(exc).__name__})"


def make_http_client(timeout: float, transport: Any = None, *, tls: bool = True) -> Any:
    """The client for the API and storage. ``tls=False`` (the local stack, plain http on
    127.0.0.1) skips loading the certificate store, which costs a command ~40 ms."""
    httpx = import_httpx()
    return httpx.Client(
        timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
        transport=transport,
        follow_redirects=False,
        headers={"user-agent": "imgup"},
        verify=tls,
    )


class ImageApi:
    """The image API's routes. ``batch`` says whether the batch routes may be used: it turns
    False, once, when the deployed API turns out not to have them (a stack deployed by an
    older imgup), and the batch methods then fall back to the single-item routes."""

    def __init__(self, base_url: str, api_key: str, http: Any, retry: RetryPolicy | None = None):
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key
        self.http = http
        self.retry = retry or RetryPolicy()
        self.batch = True
        self.clock_skew = 0.0
        """Seconds the server's clock is ahead of ours, from the Date of its last answer."""

    def __repr__(self) -> str:  # never show the key
        return f"ImageApi({self.base_url!r})"

    def _request(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        url = self.base_url + path
        headers = {"x-api-key": self._api_key, "accept": "application/json"}
        delays = self.retry.delays()
        while True:
            try:
                response = self.http.request(method, url, headers=headers, **kwargs)
            except transport_errors() as exc:
                delay = next(delays, None)
                if delay is None:
                    raise ApiError(
                        f"Cannot reach the API at {self.base_url}: {describe_transport_error(exc)}.",
                        "Check your network; for the local stack run `imgup local status`.",
                    ) from None
                self.retry.sleep(delay)
                continue
            self._note_date(response)
            if response.status_code in RETRY_STATUSES:
                delay = next(delays, None)
                if delay is not None:
                    self.retry.sleep(retry_after(response, delay))
                    continue
            return self._decode(method, path, response)

    def _note_date(self, response: Any) -> None:
        from email.utils import parsedate_to_datetime

        stamp = getattr(response, "headers", {}).get("date")
        if not stamp:
            return
        try:
            self.clock_skew = parsedate_to_datetime(stamp).timestamp() - time.time()
        except (TypeError, ValueError, OverflowError):
            pass

    def seconds_left(self, grant: dict[str, Any]) -> float | None:
        """How long an upload URL still lives by its ``expiresAt``, counted on the server's
        clock (so a client clock that is off does not matter); None if unknown."""
        import datetime as dt

        try:
            expires = dt.datetime.fromisoformat(str(grant["expiresAt"]).replace("Z", "+00:00"))
        except (KeyError, ValueError):
            return None
        return expires.timestamp() - (time.time() + self.clock_skew)

    def _decode(self, method: str, path: str, response: Any) -> dict[str, Any]:
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.is_success and isinstance(body, dict):
            return body
        status = response.status_code
        message = ""
        if isinstance(body, dict):
            message = str(body.get("error") or body.get("message") or "")
        if status == 403 and message in {"Forbidden", ""}:
            raise ApiError(
                "The API refused the API key (403 Forbidden).",
                "Run `imgup deploy` again to refresh the stored key.",
                status,
            )
        if status == 403 and "Missing Authentication Token" in message:
            raise RouteMissing(
                f"The API has no route {method} {path} (is the deployment current?).",
                "Run `imgup deploy` to update the stack.",
                status,
            )
        if response.is_success:
            raise ApiError(f"The API answered {method} {path} with something that is not JSON.")
        text = message or f"HTTP {status}"
        if status == 429:
            raise ApiError(
                f"The API is throttling requests on {method} {path}: {text} (HTTP 429).",
                "Try again later, or upload with a lower --concurrency.",
                status,
            )
        if 400 <= status < 500:
            rejected = path == "/upload" or path.endswith("/complete")
            raise (UploadRejected if rejected else ApiError)(text, status=status)
        raise ApiError(
            f"The API failed on {method} {path}: {text} (HTTP {status}).",
            "Try again later; if it persists, check the function logs (CloudWatch, or the "
            "local stack's log shown by `imgup local status`).",
            status,
        )

    # --- the routes ---------------------------------------------------------------------

    def request_upload(
        self,
        file_name: str,
        file_type: str,
        file_size: int,
        sha256: str | None = None,
        tags: dict[str, str] | None = None,
        allow_duplicates: bool = False,
    ) -> dict[str, Any]:
        """A grant for one upload; with ``sha256``, the image that already has these bytes
        instead (``"duplicate": true``), unless ``allow_duplicates``."""
        body: dict[str, Any] = {"fileName": file_name, "fileType": file_type, "fileSize": file_size}
        if sha256:
            body["sha256"] = sha256
        if tags:
            body["tags"] = tags
        if allow_duplicates:
            body["allowDuplicates"] = True
        return self._request("POST", "/upload", json=body)

    def complete(self, image_id: str) -> dict[str, Any]:
        return self._request("POST", f"/images/{image_id}/complete")

    def request_uploads(self, files: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Presign up to MAX_BATCH uploads in one request; one entry per file, in order: a
        grant, or ``{"error", "status"}`` for a file the API refused."""
        if self.batch:
            try:
                answer = self._request("POST", "/uploads", json={"files": files})
                return _entries(answer, "uploads", len(files))
            except RouteMissing:
                self.batch = False
        return [self._single(self.request_upload, **_upload_args(f)) for f in files]

    def complete_many(self, image_ids: list[str]) -> list[dict[str, Any]]:
        """Complete up to MAX_BATCH uploads in one request; one entry per id, in order: the
        ready image, or ``{"imageId", "error", "status"}``."""
        if self.batch:
            try:
                answer = self._request("POST", "/uploads/complete", json={"imageIds": image_ids})
                return _entries(answer, "images", len(image_ids))
            except RouteMissing:
                self.batch = False
        return [{"imageId": i, **self._single(self.complete, i)} for i in image_ids]

    @staticmethod
    def _single(call: Callable[..., dict[str, Any]], *args: Any, **kwargs: Any) -> dict[str, Any]:
        """A single-route call as a batch entry: its answer, or its failure as an entry (one
        item's failure, even after its retries, is not the others')."""
        try:
            return call(*args, **kwargs)
        except ApiError as exc:
            return {"error": exc.message, "status": exc.status}

    def list_page(
        self,
        limit: int | None = None,
        cursor: str | None = None,
        where: ListFilter | None = None,
        *,
        oldest_first: bool = False,
        count_remaining: bool = False,
    ) -> dict[str, Any]:
        params: dict[str, Any] = dict(where.to_params()) if where else {}
        if limit:
            params["limit"] = limit
        if cursor:
            params["cursor"] = cursor
        if oldest_first:
            params["order"] = "oldest"
        if count_remaining:
            params["countRemaining"] = "true"
        page = self._request("GET", "/images", params=params)
        if (where and not where.empty or oldest_first) and "filter" not in page:
            # An API from before filters ignores them: never pass its answer off as filtered.
            raise RouteMissing(
                "The deployed API does not know listing filters or order (it is older than imgup).",
                "Run `imgup deploy` to update the stack.",
            )
        return page

    def iter_images(self, limit: int | None = None, page_size: int = LIST_PAGE) -> Iterator[dict[str, Any]]:
        """Every ready image, newest first, following cursors (at most ``limit``)."""
        return iter(Listing(self, limit=limit, page_size=page_size))

    def share(self, image_id: str, expires_in: int) -> dict[str, Any]:
        """A share link's path (``sharePath``, under this API's URL) and when it expires."""
        return self._request("POST", f"/images/{image_id}/share", json={"expiresIn": expires_in})

    def get(self, image_id: str) -> dict[str, Any]:
        return self._request("GET", f"/images/{image_id}")

    def delete(self, image_id: str) -> dict[str, Any]:
        return self._request("DELETE", f"/images/{image_id}")

    def change_tags(
        self, image_id: str, set_tags: dict[str, str] | None = None, remove: list[str] | None = None
    ) -> dict[str, Any]:
        """Set and remove tags of an image (``POST /images/{imageId}/tags``); the image."""
        body: dict[str, Any] = {}
        if set_tags:
            body["set"] = set_tags
        if remove:
            body["remove"] = remove
        return self._request("POST", f"/images/{image_id}/tags", json=body)


@dataclass(frozen=True)
class Remaining:
    """How many images come after those a listing gave: exactly ``count``, or at least
    ``count`` when not ``exact`` (the API counts a bounded stretch); ``count`` None when the
    API did not say (an older stack)."""

    count: int | None
    exact: bool


class Listing:
    """The images of a listing, newest (or oldest) first, page by page as they are read, at
    most ``limit``. Once it is exhausted, ``remaining`` says what came after the last one
    (None while iterating).

    The first page is small, so that the first rows come at once; later ones are as large as
    the API allows. The next page is asked for while the rows of this one are handed out, so
    that the API works while the caller prints: at most two pages are held at a time, so
    memory does not grow with the gallery. The API counts what remains only on the page that
    completes ``limit``."""

    def __init__(
        self,
        api: ImageApi,
        *,
        where: ListFilter | None = None,
        oldest_first: bool = False,
        limit: int | None = None,
        page_size: int = LIST_PAGE,
    ) -> None:
        self.api = api
        self.where = where
        self.oldest_first = oldest_first
        self.limit = limit
        self.page_size = page_size
        self.remaining: Remaining | None = None

    def __iter__(self) -> Iterator[dict[str, Any]]:
        yielded = 0
        pending = self._ask(None, min(self.page_size, FIRST_PAGE), yielded)
        for _ in range(MAX_PAGES):
            page = pending.result()
            images = page.get("images", [])
            taken = images if self.limit is None else images[: self.limit - yielded]
            left = len(images) - len(taken)  # a page longer than asked for: not shown
            cursor = page.get("nextCursor")
            full = self.limit is not None and yielded + len(taken) >= self.limit
            if cursor and not full:
                pending = self._ask(cursor, self.page_size, yielded + len(taken))
            yield from taken
            yielded += len(taken)
            if not cursor:
                self.remaining = Remaining(left, True)
                return
            if full:
                count = page.get("remaining")
                self.remaining = Remaining(
                    count + left if isinstance(count, int) else None, bool(page.get("remainingExact"))
                )
                return
        raise ApiError(f"The listing did not end after {MAX_PAGES} pages.")

    def _ask(self, cursor: str | None, size: int, yielded: int) -> _Pending:
        """The next page, asked for in the background."""
        want = size if self.limit is None else min(size, self.limit - yielded)
        completes = self.limit is not None and want == self.limit - yielded
        return _Pending(self._page, want, cursor, completes)

    def _page(self, want: int, cursor: str | None, count: bool) -> dict[str, Any]:
        try:
            return self.api.list_page(
                want, cursor, self.where, oldest_first=self.oldest_first, count_remaining=count
            )
        except ApiError as exc:
            if exc.status != 400 or want <= OLD_MAX_PAGE or "limit" not in exc.message:
                raise
        self.page_size = OLD_MAX_PAGE  # a stack from before pages of 1000
        return self.api.list_page(
            OLD_MAX_PAGE, cursor, self.where, oldest_first=self.oldest_first, count_remaining=count
        )


class _Pending:
    """A call running in a daemon thread (so that Ctrl-C never waits for it); ``result()``
    waits for it, and raises what it raised."""

    def __init__(self, call: Callable[..., dict[str, Any]], *args: Any) -> None:
        self._call, self._args = call, args
        self._result: dict[str, Any] | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True, name="imgup-list-page")
        self._thread.start()

    def _run(self) -> None:
        try:
            self._result = self._call(*self._args)
        except BaseException as exc:  # noqa: BLE001 - handed to result()
            self._error = exc

    def result(self) -> dict[str, Any]:
        while self._thread.is_alive():
            self._thread.join(0.1)  # in steps, so that Ctrl-C is not held up
        if self._error is not None:
            raise self._error
        assert self._result is not None
        return self._result


def _upload_args(body: dict[str, Any]) -> dict[str, Any]:
    return {
        "file_name": body["fileName"],
        "file_type": body["fileType"],
        "file_size": body["fileSize"],
        "sha256": body.get("sha256"),
        "tags": body.get("tags"),
        "allow_duplicates": bool(body.get("allowDuplicates")),
    }


def _entries(answer: dict[str, Any], name: str, expected: int) -> list[dict[str, Any]]:
    entries = answer.get(name)
    if (
        not isinstance(entries, list)
        or len(entries) != expected
        or not all(isinstance(e, dict) for e in entries)
    ):
        raise ApiError(
            f"The API answered a batch of {expected} with something else (no list {name!r} of that length)."
        )
    return entries


def retry_after(response: Any, default: float) -> float:
    """The server's Retry-After in seconds (capped at 30) when it gave one, else ``default``."""
    if response is None:
        return default
    try:
        return min(float(response.headers.get("retry-after", "")), 30.0)
    except ValueError:
        return default
