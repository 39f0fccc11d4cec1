"""The image API client against httpx.MockTransport: retries, errors, the key, paging."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import httpx
import pytest

from imgup.api import ImageApi, Listing, Remaining, RetryPolicy, make_http_client
from imgup.backend.rules import ListFilter
from imgup.errors import ApiError, ExitCode, UploadRejected

BASE = "https://api.example.test/v1"
KEY = "k3y-Sup3r-S3cret-0123456789abcdef"

Step = httpx.Response | type[Exception] | Callable[[httpx.Request], httpx.Response]


class Script:
    """A MockTransport handler that plays ``steps`` in order (the last one repeats) and
    records every request. A step is a response, a transport-error class to raise, or a
    function of the request."""

    def __init__(self, *steps: Step) -> None:
        self.steps = list(steps)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        step = self.steps.pop(0) if len(self.steps) > 1 else self.steps[0]
        if isinstance(step, type) and issubclass(step, Exception):
            raise step("scripted failure", request=request)
        if callable(step):
            return step(request)
        # A fresh response each time: a response object is consumed by the client that reads it.
        return httpx.Response(step.status_code, headers=step.headers, content=step.content)


class Sleeps(list):
    """A fake ``sleep`` that records the delays it was asked for."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def make_api(script: Script, *, retries: int = 4, base: float = 0.25, cap: float = 8.0, jitter=1.0):
    sleeps = Sleeps()
    policy = RetryPolicy(retries=retries, base=base, cap=cap, sleep=sleeps, jitter=lambda: jitter)
    http = make_http_client(5.0, transport=httpx.MockTransport(script))
    return ImageApi(BASE, KEY, http, policy), sleeps


def ok(body: dict | None = None) -> httpx.Response:
    return httpx.Response(200, json={"images": []} if body is None else body)


def all_error_text(error: BaseException) -> str:
    return " ".join(str(part) for part in (error, repr(error), error.args, getattr(error, "hint", "")))


# --- retries ---------------------------------------------------------------------------


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
def test_a_retryable_status_is_retried_until_the_api_answers(status):
    script = Script(httpx.Response(status), httpx.Response(status), ok({"images": [{"imageId": "a"}]}))
    api, sleeps = make_api(script)

    page = api.list_page()

    assert page == {"images": [{"imageId": "a"}]}
    assert len(script.requests) == 3
    assert sleeps == [0.25, 0.5]


# Bodies as API Gateway and the functions send them.
FAILURE_BODIES = {
    500: {"error": "Internal error; see the function logs"},
    502: {"message": "Internal server error"},
    503: {"message": "Service Unavailable"},
    504: {"message": "Endpoint request timed out"},
}


@pytest.mark.parametrize("status", sorted(FAILURE_BODIES))
def test_after_the_last_retry_an_api_error_names_the_status(status):
    script = Script(httpx.Response(status, json=FAILURE_BODIES[status]))
    api, sleeps = make_api(script, retries=2)

    with pytest.raises(ApiError) as caught:
        api.list_page()

    assert len(script.requests) == 3
    assert len(sleeps) == 2
    assert caught.value.status == status
    assert str(status) in caught.value.message
    assert caught.value.exit_code == ExitCode.API


def test_throttling_that_outlasts_the_retries_is_an_api_error_naming_429():
    # API Gateway throttles with 429 {"message": "Too Many Requests"}.
    script = Script(httpx.Response(429, json={"message": "Too Many Requests"}))
    api, sleeps = make_api(script, retries=2)

    with pytest.raises(ApiError) as caught:
        api.list_page()

    assert len(script.requests) == 3
    assert caught.value.status == 429
    assert "429" in caught.value.message


def test_transport_errors_are_retried_then_the_answer_is_used():
    script = Script(httpx.ConnectError, httpx.ReadTimeout, ok({"images": [], "nextCursor": None}))
    api, sleeps = make_api(script)

    assert api.list_page() == {"images": [], "nextCursor": None}
    assert len(script.requests) == 3
    assert sleeps == [0.25, 0.5]


@pytest.mark.parametrize(
    ("error", "explanation"),
    [(httpx.ConnectError, "refused"), (httpx.ReadTimeout, "timed out"), (httpx.RemoteProtocolError, "")],
)
def test_a_transport_error_that_persists_becomes_cannot_reach_after_the_retries(error, explanation):
    script = Script(error)
    api, sleeps = make_api(script, retries=3)

    with pytest.raises(ApiError) as caught:
        api.request_upload("a.png", "image/png", 10)

    assert len(script.requests) == 4
    assert len(sleeps) == 3
    assert caught.value.message.startswith(f"Cannot reach the API at {BASE}")
    assert explanation in caught.value.message
    assert caught.value.hint


def test_with_zero_retries_there_is_one_attempt_and_no_sleep():
    script = Script(httpx.Response(503))
    api, sleeps = make_api(script, retries=0)

    with pytest.raises(ApiError):
        api.list_page()

    assert len(script.requests) == 1
    assert sleeps == []


def test_delays_grow_exponentially_and_stop_at_the_cap():
    script = Script(httpx.Response(503))
    api, sleeps = make_api(script, retries=6, base=1.0, cap=5.0)

    with pytest.raises(ApiError):
        api.list_page()

    assert sleeps == [1.0, 2.0, 4.0, 5.0, 5.0, 5.0]


def test_jitter_scales_each_delay_below_its_ceiling():
    script = Script(httpx.Response(500))
    api, sleeps = make_api(script, retries=4, base=1.0, cap=3.0, jitter=0.5)

    with pytest.raises(ApiError):
        api.list_page()

    assert sleeps == [0.5, 1.0, 1.5, 1.5]


def test_the_default_jitter_keeps_every_delay_within_its_ceiling():
    sleeps = Sleeps()
    policy = RetryPolicy(retries=8, base=0.5, cap=2.0, sleep=sleeps)

    delays = list(policy.delays())

    assert len(delays) == 8
    assert all(0 <= delay <= min(2.0, 0.5 * 2**n) for n, delay in enumerate(delays))


def test_a_retry_after_header_sets_the_delay():
    script = Script(httpx.Response(429, headers={"Retry-After": "3"}), ok())
    api, sleeps = make_api(script, base=0.25, cap=1.0)

    api.list_page()

    assert sleeps == [3.0]


def test_a_retry_after_date_falls_back_to_the_backoff_delay():
    script = Script(httpx.Response(503, headers={"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}), ok())
    api, sleeps = make_api(script)

    api.list_page()

    assert sleeps == [0.25]


# --- errors that are not retried --------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "method", "path"),
    [
        (lambda api: api.request_upload("a.png", "image/png", 10), "POST", "/upload"),
        (lambda api: api.complete("img-1"), "POST", "/images/img-1/complete"),
    ],
    ids=["upload", "complete"],
)
@pytest.mark.parametrize("status", [400, 409, 413])
def test_a_refused_upload_is_upload_rejected_with_the_server_message_and_no_retry(call, method, path, status):
    script = Script(httpx.Response(status, json={"error": "fileSize 9 MB exceeds the 5 MB limit"}))
    api, sleeps = make_api(script)

    with pytest.raises(UploadRejected) as caught:
        call(api)

    assert caught.value.message == "fileSize 9 MB exceeds the 5 MB limit"
    assert caught.value.status == status
    assert [(r.method, r.url.path) for r in script.requests] == [(method, "/v1" + path)]
    assert sleeps == []


def test_a_client_error_elsewhere_is_an_api_error_with_the_server_message():
    script = Script(httpx.Response(404, json={"error": "No image with id img-9"}))
    api, sleeps = make_api(script)

    with pytest.raises(ApiError) as caught:
        api.get("img-9")

    assert type(caught.value) is ApiError
    assert caught.value.message == "No image with id img-9"
    assert caught.value.status == 404
    assert len(script.requests) == 1
    assert sleeps == []


def test_a_403_forbidden_says_the_api_key_was_refused():
    script = Script(httpx.Response(403, json={"message": "Forbidden"}))
    api, sleeps = make_api(script)

    with pytest.raises(ApiError) as caught:
        api.list_page()

    assert "API key" in caught.value.message
    assert "imgup deploy" in caught.value.hint
    assert caught.value.status == 403
    assert len(script.requests) == 1
    assert sleeps == []


def test_a_403_missing_authentication_token_says_the_route_is_missing():
    script = Script(httpx.Response(403, json={"message": "Missing Authentication Token"}))
    api, _ = make_api(script)

    with pytest.raises(ApiError) as caught:
        api.delete("img-1")

    assert "DELETE /images/img-1" in caught.value.message
    assert "API key" not in caught.value.message


def test_a_success_that_is_not_json_is_an_api_error():
    script = Script(httpx.Response(200, text="<html>gateway</html>"))
    api, _ = make_api(script)

    with pytest.raises(ApiError) as caught:
        api.list_page()

    assert "not JSON" in caught.value.message


# --- the API key -----------------------------------------------------------------------


def test_the_api_key_is_sent_on_every_request_including_retries():
    script = Script(
        httpx.Response(503),
        httpx.ConnectError,
        ok({"imageId": "i1", "uploadUrl": "u"}),
        ok({"imageId": "i1"}),
        ok({"images": []}),
        ok({"imageId": "i1"}),
        ok({"deleted": True}),
    )
    api, _ = make_api(script)

    api.request_upload("a.png", "image/png", 10)
    api.complete("i1")
    api.list_page()
    api.get("i1")
    api.delete("i1")

    assert len(script.requests) == 7
    assert all(request.headers.get("x-api-key") == KEY for request in script.requests)


@pytest.mark.parametrize(
    "step",
    [
        httpx.Response(403, json={"message": "Forbidden"}),
        httpx.Response(400, json={"error": "bad fileName"}),
        httpx.Response(500, json={"error": "boom"}),
        httpx.Response(429),
        httpx.Response(200, text="not json"),
        httpx.ConnectError,
        httpx.ReadTimeout,
    ],
    ids=["403", "400", "500", "429", "not-json", "connect", "timeout"],
)
def test_the_api_key_never_appears_in_an_error_or_the_clients_repr(step):
    api, _ = make_api(Script(step), retries=1)

    with pytest.raises(ApiError) as caught:
        api.request_upload("a.png", "image/png", 10)

    assert KEY not in all_error_text(caught.value)
    assert KEY not in repr(api)
    assert KEY not in str(api)


# --- the routes ------------------------------------------------------------------------


def test_request_upload_posts_the_file_description_as_json():
    script = Script(ok({"imageId": "i1"}))
    api, _ = make_api(script)

    api.request_upload("cat.png", "image/png", 1234, "ab" * 32)

    request = script.requests[0]
    assert (request.method, str(request.url)) == ("POST", BASE + "/upload")
    assert json.loads(request.content) == {
        "fileName": "cat.png",
        "fileType": "image/png",
        "fileSize": 1234,
        "sha256": "ab" * 32,
    }


def pages(*contents: dict) -> Callable[[httpx.Request], httpx.Response]:
    """A GET /images handler serving ``contents`` by cursor: page n has cursor "c<n>"."""

    def serve(request: httpx.Request) -> httpx.Response:
        cursor = request.url.params.get("cursor")
        index = 0 if cursor is None else int(cursor[1:])
        return httpx.Response(200, json=contents[index])

    return serve


def test_iter_images_follows_next_cursor_across_pages():
    serve = pages(
        {"images": [{"imageId": "a"}, {"imageId": "b"}], "nextCursor": "c1"},
        {"images": [{"imageId": "c"}, {"imageId": "d"}], "nextCursor": "c2"},
        {"images": [{"imageId": "e"}], "nextCursor": None},
    )
    script = Script(serve)
    api, _ = make_api(script)

    ids = [image["imageId"] for image in api.iter_images(page_size=2)]

    assert ids == ["a", "b", "c", "d", "e"]
    assert [r.url.params.get("cursor") for r in script.requests] == [None, "c1", "c2"]
    assert all(r.url.params.get("limit") == "2" for r in script.requests)


def test_iter_images_stops_at_the_limit_without_fetching_further_pages():
    serve = pages(
        {"images": [{"imageId": "a"}, {"imageId": "b"}], "nextCursor": "c1"},
        {"images": [{"imageId": "c"}, {"imageId": "d"}], "nextCursor": "c2"},
        {"images": [{"imageId": "e"}]},
    )
    script = Script(serve)
    api, _ = make_api(script)

    ids = [image["imageId"] for image in api.iter_images(limit=3, page_size=2)]

    assert ids == ["a", "b", "c"]
    assert [(r.url.params.get("limit"), r.url.params.get("cursor")) for r in script.requests] == [
        ("2", None),
        ("1", "c1"),
    ]


def test_iter_images_stops_at_the_limit_even_when_a_page_holds_more():
    script = Script(ok({"images": [{"imageId": str(n)} for n in range(5)], "nextCursor": "c1"}))
    api, _ = make_api(script)

    assert [image["imageId"] for image in api.iter_images(limit=2)] == ["0", "1"]
    assert len(script.requests) == 1


def test_iter_images_stops_when_a_page_has_no_cursor():
    script = Script(ok({"images": []}))
    api, _ = make_api(script)

    assert list(api.iter_images()) == []
    assert len(script.requests) == 1


# --- listings: large pages, what remains, filters, older stacks ------------------------------


def test_a_long_listing_starts_with_a_small_page_then_asks_for_the_largest():
    serve = pages(
        {"images": [{"imageId": str(n)} for n in range(100)], "nextCursor": "c1"},
        {"images": [{"imageId": str(n)} for n in range(100, 1100)], "nextCursor": "c2"},
        {"images": [{"imageId": "last"}], "nextCursor": None},
    )
    script = Script(serve)
    api, _ = make_api(script)

    listing = Listing(api)
    assert len(list(listing)) == 1101
    assert [r.url.params.get("limit") for r in script.requests] == ["100", "1000", "1000"]
    assert listing.remaining == Remaining(0, True)


def test_the_next_page_is_asked_for_before_the_rows_of_this_one_are_handed_out():
    serve = pages(
        {"images": [{"imageId": "a"}, {"imageId": "b"}], "nextCursor": "c1"},
        {"images": [{"imageId": "c"}], "nextCursor": None},
    )
    script = Script(serve)
    api, _ = make_api(script)

    rows = iter(Listing(api, page_size=2))
    assert next(rows)["imageId"] == "a"
    deadline = time.monotonic() + 5
    while len(script.requests) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(script.requests) == 2  # while "a" was being handled
    assert [image["imageId"] for image in rows] == ["b", "c"]


def test_the_page_that_completes_the_limit_asks_how_many_remain_and_the_listing_says_so():
    script = Script(
        ok(
            {
                "images": [{"imageId": "a"}, {"imageId": "b"}],
                "nextCursor": "c1",
                "remaining": 7,
                "remainingExact": False,
                "filter": {},
            }
        )
    )
    api, _ = make_api(script)

    listing = Listing(api, limit=2)
    assert [i["imageId"] for i in listing] == ["a", "b"]
    assert script.requests[0].url.params.get("countRemaining") == "true"
    assert listing.remaining == Remaining(7, False)


def test_an_older_api_that_counts_nothing_leaves_the_count_unknown():
    script = Script(ok({"images": [{"imageId": "a"}], "nextCursor": "c1"}))
    api, _ = make_api(script)

    listing = Listing(api, limit=1)
    list(listing)
    assert listing.remaining == Remaining(None, False)


def test_filters_and_order_are_sent_as_query_parameters():
    script = Script(ok({"images": [], "nextCursor": None, "filter": {}}))
    api, _ = make_api(script)
    where = ListFilter(name="tmp*", types=("image/png", "image/gif"), since="2026-01-01T00:00:00.000000Z")

    list(Listing(api, where=where, oldest_first=True, limit=5))

    params = dict(script.requests[0].url.params)
    assert params == {
        "name": "tmp*",
        "type": "image/png,image/gif",
        "since": "2026-01-01T00:00:00.000000Z",
        "limit": "5",
        "order": "oldest",
        "countRemaining": "true",
    }


def test_an_api_that_ignores_filters_is_never_taken_for_one_that_applied_them():
    script = Script(ok({"images": [{"imageId": "everything"}], "nextCursor": None}))
    api, _ = make_api(script)

    with pytest.raises(ApiError) as caught:
        list(Listing(api, where=ListFilter(name="tmp*")))
    assert "imgup deploy" in (caught.value.hint or "")


def test_a_stack_that_serves_pages_of_100_only_is_listed_in_pages_of_100():
    def serve(request: httpx.Request) -> httpx.Response:
        if int(request.url.params["limit"]) > 100:
            return httpx.Response(
                400, json={"error": "limit must be a whole number from 1 to 100", "field": "limit"}
            )
        cursor = request.url.params.get("cursor")
        index = 0 if cursor is None else int(cursor[1:])
        return httpx.Response(
            200,
            json={
                "images": [{"imageId": f"{index}-{n}"} for n in range(100)],
                "nextCursor": f"c{index + 1}" if index < 2 else None,
            },
        )

    script = Script(serve)
    api, _ = make_api(script)

    assert len(list(Listing(api))) == 300
    assert [r.url.params["limit"] for r in script.requests] == ["100", "1000", "100", "100"]
