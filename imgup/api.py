"""Client of the image API (the deployed REST API or the local emulator).

One ``httpx.Client`` is passed in (tests give it a ``MockTransport`` or point it at a fault
proxy); the API key travels only in this module's request headers, never in messages. Calls
that are safe to repeat are retried on 429/5xx and transport errors with capped exponential
backoff and full jitter (``RetryPolicy``); ``POST /upload`` is retried too, since an extra
pending record is invisible and expires by TTL.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from .errors import ApiError, UploadRejected

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
MAX_PAGES = 10_000


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


def transport_errors() -> tuple[type[BaseException], ...]:
    import httpx

    return (httpx.TransportError,)


def describe_transport_error(exc: BaseException) -> str:
    import httpx

    if isinstance(exc, httpx.TimeoutException):
        return "the request timed out"
    if isinstance(exc, httpx.ConnectError):
        return "the connection was refused"
    return f"the connection failed ({type(exc).__name__})"


def make_http_client(timeout: float, transport: Any = None) -> Any:
    import httpx

    return httpx.Client(
        timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
        transport=transport,
        follow_redirects=False,
        headers={"user-agent": "imgup"},
    )


class ImageApi:
    def __init__(self, base_url: str, api_key: str, http: Any, retry: RetryPolicy | None = None):
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key
        self.http = http
        self.retry = retry or RetryPolicy()

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
            if response.status_code in RETRY_STATUSES:
                delay = next(delays, None)
                if delay is not None:
                    self.retry.sleep(retry_after(response, delay))
                    continue
            return self._decode(method, path, response)

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
            raise ApiError(
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
        self, file_name: str, file_type: str, file_size: int, sha256: str | None = None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"fileName": file_name, "fileType": file_type, "fileSize": file_size}
        if sha256:
            body["sha256"] = sha256
        return self._request("POST", "/upload", json=body)

    def complete(self, image_id: str) -> dict[str, Any]:
        return self._request("POST", f"/images/{image_id}/complete")

    def list_page(self, limit: int | None = None, cursor: str | None = None) -> dict[str, Any]:
        params: dict[str, Any] = {}
        if limit:
            params["limit"] = limit
        if cursor:
            params["cursor"] = cursor
        return self._request("GET", "/images", params=params)

    def iter_images(self, limit: int | None = None, page_size: int = 100) -> Iterator[dict[str, Any]]:
        """Every ready image, newest first, following cursors (at most ``limit``)."""
        cursor = None
        yielded = 0
        for _ in range(MAX_PAGES):
            want = page_size if limit is None else min(page_size, limit - yielded)
            page = self.list_page(want, cursor)
            for image in page.get("images", []):
                yield image
                yielded += 1
                if limit is not None and yielded >= limit:
                    return
            cursor = page.get("nextCursor")
            if not cursor:
                return

    def get(self, image_id: str) -> dict[str, Any]:
        return self._request("GET", f"/images/{image_id}")

    def delete(self, image_id: str) -> dict[str, Any]:
        return self._request("DELETE", f"/images/{image_id}")


def retry_after(response: Any, default: float) -> float:
    """The server's Retry-After in seconds (capped at 30) when it gave one, else ``default``."""
    if response is None:
        return default
    try:
        return min(float(response.headers.get("retry-after", "")), 30.0)
    except ValueError:
        return default
