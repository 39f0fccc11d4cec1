"""Faults between the client and the stack: API errors, resets, timeouts, expired URLs.

The client core runs in-process through a ``FaultTransport`` against the real local stack;
the real ``imgup`` command runs in a subprocess through a ``FaultProxy``. Every test ends
with the consistency check: doctor finds no problem, and the gallery gained exactly the
files that were reported uploaded.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from imgup.api import ImageApi, RetryPolicy, make_http_client
from imgup.uploads import Outcome, collect_files, upload_files
from tests.faults.faultproxy import (
    Answer,
    Consistency,
    Fault,
    FaultPlan,
    FaultProxy,
    FaultTransport,
    Reset,
    Timeout,
    expired,
    first,
    iter_lines,
    proxied_config,
)
from tests.samples import png_bytes, sha256_hex

pytestmark = pytest.mark.e2e

MAX_BYTES = 5 * 1024 * 1024


def make_images(directory: Path, count: int, stem: str = "img", size: int = 150_000) -> list[Path]:
    """``count`` distinct PNGs of about ``size`` bytes (several 64 KiB chunks each)."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for n in range(count):
        path = directory / f"{stem}-{n}.png"
        data = png_bytes(size)
        path.write_bytes(data.replace(b"x" * 32, uuid.uuid4().hex.encode(), 1))
        paths.append(path)
    return paths


@dataclass
class FaultRun:
    outcomes: list[Outcome]
    sleeps: list[float]
    plan: FaultPlan

    @property
    def uploaded(self) -> dict[str, str]:
        """imageId -> source path of every file reported uploaded."""
        return {o.image["imageId"]: o.source for o in self.outcomes if o.image}

    @property
    def errors(self) -> dict[str, str]:
        return {o.source: o.error for o in self.outcomes if o.error}


def upload_through(
    stack, plan: FaultPlan, files: list[Path], *, concurrency: int = 1, retries: int = 4, batch: bool = False
) -> FaultRun:
    """The upload core, as ``imgup upload`` runs it, with the fault transport under it and a
    sleep that records the backoff delays instead of waiting. ``batch=False`` uses the
    single-file routes (``/upload$``, ``/complete$``), as against a stack of an older imgup."""
    sleeps: list[float] = []
    retry = RetryPolicy(retries=retries, sleep=sleeps.append)
    good, bad = collect_files([str(f) for f in files], MAX_BYTES)
    assert bad == []
    with make_http_client(30, transport=FaultTransport(plan)) as http:
        api = ImageApi(stack.api_url, stack.api_key, http, retry)
        api.batch = batch
        outcomes = upload_files(good, api, concurrency=concurrency)
    return FaultRun(outcomes, sleeps, plan)


@pytest.fixture
def consistency(local_stack) -> Consistency:
    return Consistency(local_stack)


@pytest.fixture
def before(consistency: Consistency) -> set[str]:
    return set(consistency.gallery())


def assert_bytes_served(gallery: dict, run: FaultRun) -> None:
    """Each reported upload is listed once and its fileUrl serves the very bytes."""
    with httpx.Client(timeout=30) as http:
        for image_id, source in run.uploaded.items():
            fetched = http.get(gallery[image_id]["fileUrl"])
            assert fetched.status_code == 200
            assert sha256_hex(fetched.content) == sha256_hex(Path(source).read_bytes())


# --- in-process, through the fault transport ---------------------------------------------


def test_an_api_answering_500_502_503_and_429_a_few_times_still_uploads_every_file(
    local_stack, consistency: Consistency, before: set[str], tmp_path: Path
) -> None:
    plan = FaultPlan()
    for hit, status in enumerate((500, 502, 503), start=1):
        plan.add("POST", "/upload$", Answer(status), {hit})
    plan.add("POST", "/upload$", Answer(429, headers=(("retry-after", "7"),)), {4})
    plan.add("PUT", "/images/", Answer(503), {1})
    plan.add("POST", "/complete$", Answer(502), first(2))
    files = make_images(tmp_path, 3)

    run = upload_through(local_stack, plan, files)

    assert run.errors == {}
    assert len(run.uploaded) == 3
    injected = sum(len(plan.faults(m, p)) for m, p in (("POST", ""), ("PUT", "")))
    assert injected == 7
    assert len(run.sleeps) == 7, "one backoff per injected fault"
    assert 7.0 in run.sleeps, "429's Retry-After was not honoured"
    assert len(plan.requests("POST", "/upload$")) == 3 + 4
    gallery = consistency.check(before=before, reported=run.uploaded)
    assert_bytes_served(gallery, run)


@pytest.mark.parametrize("after", [False, True], ids=["before-the-server-saw-it", "after-it-was-stored"])
def test_a_connection_reset_in_the_middle_of_a_put_is_retried_and_the_file_stored_once_byte_for_byte(
    local_stack, consistency: Consistency, before: set[str], tmp_path: Path, after: bool
) -> None:
    plan = FaultPlan().add("PUT", "/images/", Reset(after=after), first(2))
    files = make_images(tmp_path, 2)

    run = upload_through(local_stack, plan, files, concurrency=2)

    assert run.errors == {}
    assert len(plan.faults("PUT")) == 2 and len(run.sleeps) == 2
    assert len(plan.requests("POST", "/upload$")) == 2, "a reset must not fetch a new URL"
    gallery = consistency.check(before=before, reported=run.uploaded)
    assert_bytes_served(gallery, run)


def test_a_timeout_on_any_call_is_retried_and_completing_twice_is_harmless(
    local_stack, consistency: Consistency, before: set[str], tmp_path: Path
) -> None:
    plan = (
        FaultPlan()
        .add("POST", "/upload$", Timeout(), {1})
        .add("PUT", "/images/", Timeout(after=True), {1})
        .add("PUT", "/images/", Timeout(), {3})
        .add("POST", "/complete$", Timeout(after=True), {1})
    )
    files = make_images(tmp_path, 2)

    run = upload_through(local_stack, plan, files, concurrency=2)

    assert run.errors == {}
    assert len(run.sleeps) == 4
    assert len(plan.requests("POST", "/complete$")) == 3
    gallery = consistency.check(before=before, reported=run.uploaded)
    assert_bytes_served(gallery, run)


def test_an_expired_upload_url_is_replaced_by_a_fresh_one(
    local_stack, consistency: Consistency, before: set[str], tmp_path: Path
) -> None:
    plan = FaultPlan().add("PUT", "/images/", expired(), {1})
    files = make_images(tmp_path, 1)

    run = upload_through(local_stack, plan, files)

    assert run.errors == {}
    grants = plan.requests("POST", "/upload$")
    assert len(grants) == 2, "an expired URL must be replaced by a fresh one"
    puts = plan.requests("PUT", "/images/")
    assert len(puts) == 2 and puts[0].path != puts[1].path, "the second PUT went to the old URL"
    (image_id,) = run.uploaded
    assert image_id in puts[1].path and image_id not in puts[0].path
    assert run.sleeps == [], "an expired URL is not a transient fault to back off from"
    gallery = consistency.check(before=before, reported=run.uploaded)
    assert_bytes_served(gallery, run)


BEYOND_BUDGET: dict[str, tuple[str, str, Callable[[], Fault], str]] = {
    "the-api-refusing-upload-urls": ("POST", "/upload$", lambda: Answer(503), "HTTP 503"),
    "storage-answering-503": ("PUT", "doomed", lambda: Answer(503), "storage answered HTTP 503"),
    "the-connection-dropping-before-the-put-lands": ("PUT", "doomed", lambda: Reset(), "ReadError"),
    "storage-timing-out": ("PUT", "doomed", lambda: Timeout(), "timed out"),
}


@pytest.mark.parametrize("case", sorted(BEYOND_BUDGET))
def test_faults_beyond_the_retry_budget_fail_that_file_alone_with_a_clear_error(
    local_stack, consistency: Consistency, before: set[str], tmp_path: Path, case: str
) -> None:
    method, path, fault, message = BEYOND_BUDGET[case]
    files = make_images(tmp_path, 3, "fine")
    doomed = make_images(tmp_path, 1, "doomed")[0]
    plan = FaultPlan()
    if path == "/upload$":  # every request for the doomed file's URL, however the two
        # presigns in flight interleave (its name is in the body; the other files' pass)
        plan.add(method, path, fault(), body=doomed.name.encode())
    else:
        plan.add(method, path, fault())

    run = upload_through(local_stack, plan, [doomed, *files], retries=4)

    assert set(run.errors) == {str(doomed)}
    assert message in run.errors[str(doomed)]
    assert len(run.uploaded) == 3
    assert len(plan.faults(method, path)) == 5 and len(run.sleeps) == 4
    consistency.check(before=before, reported=run.uploaded)


@pytest.mark.parametrize(
    "method, path, fault",
    [
        pytest.param("PUT", "doomed", Reset(after=True), id="every-put-answer-lost-after-it-was-stored"),
        pytest.param("POST", "/complete$", Answer(503), id="complete-failing-after-the-put"),
    ],
)
def test_a_file_reported_failed_after_its_bytes_landed_is_never_listed(
    local_stack, consistency: Consistency, before: set[str], tmp_path: Path, method, path, fault
) -> None:
    doomed = make_images(tmp_path, 1, "doomed")[0]
    plan = FaultPlan().add(method, path, fault)

    run = upload_through(local_stack, plan, [doomed], retries=2)

    # Reporting it uploaded (its bytes did land) or failed are both honest; being listed
    # after a reported failure is not.
    assert len(run.outcomes) == 1
    consistency.check(before=before, reported=run.uploaded)


def test_a_put_whose_answer_was_lost_and_whose_url_then_expired_is_listed_once(
    local_stack, consistency: Consistency, before: set[str], tmp_path: Path
) -> None:
    # The first PUT lands but its answer is lost; the retry finds the URL expired, so the
    # client takes a fresh one. The bytes under the first URL must not become a second image.
    plan = FaultPlan().add("PUT", "/images/", Reset(after=True), {1}).add("PUT", "/images/", expired(), {2})
    files = make_images(tmp_path, 1)

    run = upload_through(local_stack, plan, files)

    assert run.errors == {}
    gallery = consistency.check(before=before, reported=run.uploaded)
    assert_bytes_served(gallery, run)


# --- the real command, through the fault proxy -------------------------------------------


@pytest.fixture
def proxy(local_stack):
    with FaultProxy(local_stack.endpoint_url, FaultPlan(), hold=10.0) as running:
        yield running


def assert_doctor_healthy(local_stack) -> None:
    doctor = local_stack.imgup("doctor", "--json")
    assert doctor.code == 0, doctor.stderr
    assert doctor.json()["healthy"] is True and doctor.json()["problems"] == []


def test_the_real_command_rides_out_api_errors_resets_timeouts_and_an_expired_url(
    local_stack, consistency: Consistency, before: set[str], proxy: FaultProxy, tmp_path: Path
) -> None:
    env = {**proxied_config(local_stack, proxy, tmp_path / "cfg"), "IMGUP_TIMEOUT": "2"}
    # One PUT fault per file, chosen by name (the S3 key holds it), so -j 4 stays deterministic.
    put_faults = {"reset": Reset(), "lost-answer": Reset(after=True), "slow": Timeout(), "stale": expired()}
    files = [make_images(tmp_path / "pics", 1, stem)[0] for stem in put_faults]
    for stem, fault in put_faults.items():
        proxy.plan.add("PUT", f"/{stem}-0.png", fault, {1})
    (
        proxy.plan.add("POST", "/upload", Answer(503), {1})
        .add("POST", "/upload", Answer(429, headers=(("retry-after", "0"),)), {2})
        .add("POST", "/complete", Answer(500), {1})
        .add("GET", "/images", Answer(502), {1})
    )

    result = local_stack.imgup("upload", "--jsonl", "-j", "4", *map(str, files), env=env, timeout=60)

    assert result.code == 0, result.stderr
    assert "Traceback" not in result.stderr
    lines = list(iter_lines(result.stdout))
    assert sorted(line["fileName"] for line in lines) == sorted(f.name for f in files)
    assert len(proxy.plan.faults("PUT")) == 4 and len(proxy.plan.faults("POST")) == 3
    puts = proxy.plan.requests("PUT")
    assert len(puts) == 4 + 4
    assert all(s.path.startswith(f"/{local_stack.bucket}/images/") for s in puts), "a PUT bypassed the proxy"
    stale = [s.path for s in puts if "/stale-0.png" in s.path]
    assert len(stale) == 2 and stale[0] != stale[1], "no fresh URL after the expired one"
    listed = local_stack.imgup("list", "--all", "--json", env=env, timeout=60)
    assert listed.code == 0, listed.stderr
    assert proxy.plan.faults("GET", "/images")
    assert {i["imageId"] for i in lines} <= {i["imageId"] for i in listed.json()}
    consistency.check(before=before, reported=[line["imageId"] for line in lines])
    assert_doctor_healthy(local_stack)


def test_the_real_command_exits_6_when_one_file_fails_beyond_the_retry_budget(
    local_stack, consistency: Consistency, before: set[str], proxy: FaultProxy, tmp_path: Path
) -> None:
    env = proxied_config(local_stack, proxy, tmp_path / "cfg")
    proxy.plan.add("PUT", "doomed", Answer(502))
    files = make_images(tmp_path / "pics", 2, "fine") + make_images(tmp_path / "pics", 1, "doomed")

    result = local_stack.imgup("upload", "--jsonl", "--retries", "2", *map(str, files), env=env, timeout=60)

    assert result.code == 6, result.stderr
    assert "Traceback" not in result.stderr
    assert len(proxy.plan.faults("PUT", "doomed")) == 3, "one attempt and two retries"
    assert f"Error: {files[2]}: the upload failed: storage answered HTTP 502." in result.stderr
    assert "Uploaded 2 of 3 files." in result.stderr
    lines = list(iter_lines(result.stdout))
    assert sorted(line["fileName"] for line in lines) == ["fine-0.png", "fine-1.png"]
    consistency.check(before=before, reported=[line["imageId"] for line in lines])
    assert_doctor_healthy(local_stack)
