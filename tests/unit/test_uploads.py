"""Local file checks, and the upload flow (presign, streamed PUT, complete) against a fake API
and a fake S3 served by one httpx transport."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import io
import json
import os
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from imgup.api import ImageApi, RetryPolicy, make_http_client
from imgup.errors import ExitCode, FileRejected
from imgup.uploads import (
    CHUNK,
    Finished,
    Interrupted,
    LocalFile,
    Outcome,
    Sent,
    Started,
    Stored,
    collect_files,
    inspect_file,
    read_paths,
    upload_files,
)
from tests.samples import SAMPLES, jpeg_bytes, png_bytes, sha256_hex

LIMIT = 5 * 1024 * 1024
API = "https://api.example.test/v1"
S3_HOST = "bucket.s3.example.test"
KEY = "secret-key-0123456789"
NOW = dt.datetime(2026, 11, 25, 12, 0, 0, tzinfo=dt.timezone.utc)
# What httpx itself adds to every request; everything else on a PUT must come from the grant.
HTTPX_HEADERS = {"host", "user-agent", "accept", "accept-encoding", "connection"}


# --- inspect_file ----------------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(SAMPLES))
def test_inspect_file_accepts_each_real_format_with_its_size_and_sha256(kind, samples):
    path = samples[kind]

    local = inspect_file(path, LIMIT)

    assert local == LocalFile(path, path.name, len(SAMPLES[kind]), kind, sha256_hex(SAMPLES[kind]), 1, 1)


@pytest.mark.parametrize(("kind", "wrong_name"), [("image/png", "x.jpg"), ("image/gif", "x.png")])
def test_inspect_file_takes_the_type_from_the_content_not_the_extension(kind, wrong_name, tmp_path):
    path = tmp_path / wrong_name
    path.write_bytes(SAMPLES[kind])

    assert inspect_file(path, LIMIT).file_type == kind


def test_inspect_file_hashes_the_whole_of_a_file_larger_than_its_read_chunks(tmp_path):
    data = png_bytes(padding=2_500_000)
    path = tmp_path / "big.png"
    path.write_bytes(data)

    local = inspect_file(path, LIMIT)

    assert local.sha256 == hashlib.sha256(data).hexdigest()
    assert local.size == len(data)


def test_inspect_file_accepts_a_file_exactly_at_the_limit(samples):
    path = samples["image/png"]

    assert inspect_file(path, path.stat().st_size).size == path.stat().st_size


def rejection(path: Path, max_bytes: int = LIMIT) -> str:
    with pytest.raises(FileRejected) as caught:
        inspect_file(path, max_bytes)
    assert caught.value.exit_code == ExitCode.SOME_FAILED
    return caught.value.message


def test_inspect_file_rejects_a_missing_file(tmp_path):
    assert rejection(tmp_path / "nowhere.png") == "no such file."


def test_inspect_file_rejects_a_directory(tmp_path):
    directory = tmp_path / "album.png"
    directory.mkdir()

    said = rejection(directory)
    assert "is a directory" in said
    assert f"({directory}/*)" in said and f"find {directory} -type f | imgup upload -" in said


def test_inspect_file_rejects_an_empty_file(tmp_path):
    path = tmp_path / "empty.png"
    path.write_bytes(b"")

    assert rejection(path) == "is empty."


def test_inspect_file_rejects_a_file_over_the_limit_naming_both_sizes(tmp_path):
    path = tmp_path / "big.png"
    path.write_bytes(png_bytes(padding=3 * 1024 * 1024))

    message = rejection(path, max_bytes=2 * 1024 * 1024)

    assert "exceeds the limit" in message
    assert "3 MiB" in message
    assert "(2 MiB)" in message


def test_inspect_file_rejects_a_file_holding_only_a_gif_signature(tmp_path):
    path = tmp_path / "tiny.gif"
    path.write_bytes(b"GIF89a")

    message = rejection(path)

    assert message.startswith("is not a valid GIF image: ")


def test_inspect_file_reads_width_and_height_from_the_header(tmp_path):
    path = tmp_path / "wide.jpg"
    path.write_bytes(jpeg_bytes(width=640, height=480))

    local = inspect_file(path, LIMIT)

    assert (local.file_type, local.width, local.height) == ("image/jpeg", 640, 480)


def test_inspect_file_rejects_text_posing_as_a_png(tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("these are my notes, not a picture\n", encoding="utf-8")

    assert "is not a JPEG, PNG, GIF or WebP image" in rejection(path)


def test_inspect_file_rejects_a_fifo_without_blocking_on_it(tmp_path):
    path = tmp_path / "pipe.png"
    os.mkfifo(path)

    assert rejection(path) == "is not a regular file."


def make_symlink_loop(tmp_path: Path) -> Path:
    (tmp_path / "a.png").symlink_to(tmp_path / "b.png")
    (tmp_path / "b.png").symlink_to(tmp_path / "a.png")
    return tmp_path / "a.png"


def make_mode_000_file(tmp_path: Path) -> Path:
    path = tmp_path / "secret.png"
    path.write_bytes(SAMPLES["image/png"])
    path.chmod(0)
    return path


# root reads a mode-000 file anyway, so that case exists only for other users; a symlink loop
# cannot be read by anyone.
UNREADABLE = [make_symlink_loop] + ([] if os.geteuid() == 0 else [make_mode_000_file])


@pytest.mark.parametrize("make", UNREADABLE, ids=lambda make: make.__name__)
def test_inspect_file_rejects_a_file_it_cannot_read_saying_why(make, tmp_path):
    path = make(tmp_path)

    message = rejection(path)

    assert message.startswith("cannot read it (")
    assert str(path) not in message  # the caller shows the path in front


def test_collect_files_separates_good_files_from_rejected_ones_in_order(samples, tmp_path):
    missing = str(tmp_path / "gone.png")
    paths = [str(samples["image/png"]), missing, str(samples["image/gif"])]

    good, bad = collect_files(paths, LIMIT)

    assert [local.path for local in good] == [samples["image/png"], samples["image/gif"]]
    assert bad == [Outcome(missing, error="no such file.")]


def test_read_paths_takes_one_path_per_line_skipping_blank_lines_and_keeping_odd_bytes():
    stream = io.BytesIO(b"a.png\r\n\n  \nmy photo.jpg\ncaf\xe9.png\n")

    assert read_paths(stream) == ["a.png", "my photo.jpg", os.fsdecode(b"caf\xe9.png")]


def test_inspect_file_rejects_a_name_that_is_not_utf8(tmp_path):
    path = Path(os.fsdecode(os.path.join(os.fsencode(tmp_path), b"caf\xe9.png")))
    path.write_bytes(SAMPLES["image/png"])

    assert "not valid UTF-8" in rejection(path)


def test_read_paths_splits_on_nul_bytes_when_asked_and_keeps_newlines_in_names():
    stream = io.BytesIO(b"a.png\0my\nphoto.jpg\0\0")

    assert read_paths(stream, b"\0") == ["a.png", "my\nphoto.jpg"]


def test_a_path_holding_a_nul_byte_is_one_failed_file_not_the_end_of_the_batch(samples):
    good, bad = collect_files(["bad\0name.png", str(samples["image/png"])], LIMIT)

    assert [local.path for local in good] == [samples["image/png"]]
    assert bad == [Outcome("bad\\0name.png", error="a path cannot hold a NUL byte.")]


# --- a fake API and S3 -----------------------------------------------------------------


class FakeCloud:
    """The image API and the S3 bucket behind it, as one transport handler.

    ``batch`` serves the batch routes (POST /uploads, POST /uploads/complete); without it they
    answer as API Gateway does for a route it lacks (403 Missing Authentication Token).
    ``put_steps`` script the S3 answers to successive PUTs (the last repeats): a status code,
    a transport-error class, "expired" (S3's 403 for a URL past its expiry), or
    "fail-mid-body" (read one chunk of the body, then the connection breaks). ``lifetimes``
    give the seconds successive grants live, ``server_now`` the server's clock (its Date
    header and the base of ``expiresAt``). ``reject_names`` are refused at presign with 400.
    ``length_in_headers=False`` leaves Content-Length out of the grant's ``uploadHeaders``;
    ``expires_in=False`` leaves ``expiresIn`` out of grants (an older stack). ``known`` maps
    the SHA-256 of images in the gallery to them: a presign of those bytes answers with the
    image (``"duplicate": true``) unless it allows duplicates."""

    def __init__(
        self,
        put_steps=(200,),
        lifetimes=(300,),
        reject_names=(),
        length_in_headers=True,
        batch=True,
        server_now=None,
        expires_in=True,
        known=None,
    ):
        self.known = dict(known or {})
        self.batch = batch
        self.length_in_headers = length_in_headers
        self.expires_in = expires_in
        self.server_now = server_now or dt.datetime.now(dt.timezone.utc)
        self.put_steps = list(put_steps)
        self.lifetimes = list(lifetimes)
        self.reject_names = set(reject_names)
        self.lock = threading.Lock()
        self.log: list[tuple[str, str]] = []  # (method, url) in order
        self.presign_bodies: list[dict] = []
        self.grants: list[dict] = []
        self.puts: list[tuple[httpx.Request, bytes]] = []
        self.completed: list[str] = []
        self.stored: set[str] = set()  # image ids whose PUT landed
        self.deleted: list[str] = []  # records the client abandoned

    def answer(self, status: int, **kwargs) -> httpx.Response:
        from email.utils import format_datetime

        return httpx.Response(
            status, headers={"date": format_datetime(self.server_now, usegmt=True)}, **kwargs
        )

    def __call__(self, request: httpx.Request) -> httpx.Response:
        with self.lock:
            self.log.append((request.method, str(request.url)))
        if request.url.host == S3_HOST:
            return self.s3(request)
        assert request.headers["x-api-key"] == KEY
        path = request.url.path
        if path == "/v1/upload":
            status, body = self.presign(json.loads(request.read()))
            return self.answer(status, json=body)
        if path == "/v1/uploads" and self.batch:
            files = json.loads(request.read())["files"]
            entries = []
            for index, file in enumerate(files):
                status, body = self.presign(file)
                entries.append(
                    {"index": index, **body} if status == 200 else {"index": index, **body, "status": status}
                )
            return self.answer(200, json={"uploads": entries, "count": len(entries)})
        if path == "/v1/uploads/complete" and self.batch:
            ids = json.loads(request.read())["imageIds"]
            images = []
            for image_id in ids:
                status, body = self.complete(image_id)
                images.append(body if status == 200 else {**body, "imageId": image_id, "status": status})
            return self.answer(200, json={"images": images, "count": len(images)})
        if path.endswith("/complete"):
            status, body = self.complete(path.split("/")[-2])
            return self.answer(status, json=body)
        if request.method == "DELETE" and path.startswith("/v1/images/"):
            with self.lock:
                self.deleted.append(path.rsplit("/", 1)[-1])
            return self.answer(200, json={"message": "Image deleted"})
        return self.answer(403, json={"message": "Missing Authentication Token"})

    def complete(self, image_id: str) -> tuple[int, dict]:
        with self.lock:
            if image_id not in self.stored:  # as the real API: nothing to complete yet
                return 409, {"error": "The file has not been uploaded yet"}
            self.completed.append(image_id)
        return 200, {"imageId": image_id, "status": "ready", "width": 1, "height": 1}

    def presign(self, body: dict) -> tuple[int, dict]:
        with self.lock:
            self.presign_bodies.append(body)
            number = len(self.presign_bodies)
            lifetime = self.lifetimes.pop(0) if len(self.lifetimes) > 1 else self.lifetimes[0]
        if body["fileName"] in self.reject_names:
            return 400, {"error": f"fileName {body['fileName']} is not allowed"}
        if body["sha256"] in self.known and not body.get("allowDuplicates"):
            return 200, {"duplicate": True, **self.known[body["sha256"]]}
        checksum = base64.b64encode(bytes.fromhex(body["sha256"])).decode()
        expires = self.server_now + dt.timedelta(seconds=lifetime)
        grant = {
            "imageId": f"img-{number}",
            "uploadUrl": f"https://{S3_HOST}/uploads/img-{number}?X-Amz-Signature=sig{number}",
            "uploadHeaders": {
                "Content-Type": body["fileType"],
                "Content-Length": str(body["fileSize"]),
                "x-amz-checksum-sha256": checksum,
            },
            "fileUrl": f"https://{S3_HOST}/uploads/img-{number}?download",
            "expiresAt": expires.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "expiresIn": lifetime,
        }
        if not self.expires_in:
            del grant["expiresIn"]
        if not self.length_in_headers:
            del grant["uploadHeaders"]["Content-Length"]
        with self.lock:
            self.grants.append(grant)
        return 200, grant

    def s3(self, request: httpx.Request) -> httpx.Response:
        with self.lock:
            step = self.put_steps.pop(0) if len(self.put_steps) > 1 else self.put_steps[0]
        if step == "fail-mid-body":
            chunks = iter(request.stream)
            next(chunks), next(chunks)  # the second read hands over the first chunk
            raise httpx.ReadError("connection reset by peer", request=request)
        if isinstance(step, type):
            raise step("scripted failure", request=request)
        body = request.read()
        with self.lock:
            self.puts.append((request, body))
        if step == "expired":
            return httpx.Response(
                403, text="<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>"
            )
        if step == 200:
            with self.lock:
                self.stored.add(request.url.path.rsplit("/", 1)[-1])
            return httpx.Response(200)
        return httpx.Response(step, text=f"<Error><Code>Scripted{step}</Code></Error>")

    @property
    def put_urls(self) -> list[str]:
        return [url for method, url in self.log if method == "PUT"]

    @property
    def presign_count(self) -> int:
        return len(self.presign_bodies)

    def requests_to(self, path: str) -> int:
        return sum(1 for _, url in self.log if httpx.URL(url).path == path)


class HandlerSeesTheStream(httpx.MockTransport):
    """MockTransport reads the whole request body before calling its handler; this one leaves
    the body to the handler, so that a PUT can fail part-way through the stream."""

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        return self.handler(request)


@dataclass
class Run:
    outcomes: list[Outcome]
    events: list
    sleeps: list[float]

    @property
    def sent(self) -> int:
        return sum(e.nbytes for e in self.events if isinstance(e, Sent))


def run_upload(
    cloud: FakeCloud, files, *, retries: int = 3, concurrency: int = 2, on_event=None, allow_duplicates=False
) -> Run:
    sleeps: list[float] = []
    events: list = []
    lock = threading.Lock()

    def record(event) -> None:
        with lock:
            events.append(event)
        if on_event is not None:
            on_event(event)

    policy = RetryPolicy(retries=retries, sleep=sleeps.append, jitter=lambda: 1.0)
    http = make_http_client(5.0, transport=HandlerSeesTheStream(cloud))
    api = ImageApi(API, KEY, http, policy)
    outcomes = upload_files(
        list(files), api, concurrency=concurrency, on_event=record, allow_duplicates=allow_duplicates
    )
    return Run(outcomes, events, sleeps)


@pytest.fixture
def photo(samples) -> LocalFile:
    return inspect_file(samples["image/png"], LIMIT)


@pytest.fixture
def big_photo(tmp_path) -> LocalFile:
    """A PNG of several chunks, so that a PUT can break after the first one."""
    path = tmp_path / "big.png"
    path.write_bytes(png_bytes(padding=3 * CHUNK))
    return inspect_file(path, LIMIT)


def many(tmp_path: Path, count: int) -> list[LocalFile]:
    files = []
    for n in range(count):
        path = tmp_path / f"pic-{n}.png"
        path.write_bytes(png_bytes(padding=100 + n))
        files.append(inspect_file(path, LIMIT))
    return files


# --- upload_files: one file --------------------------------------------------------------


@pytest.mark.parametrize("batch", [True, False], ids=["batch-routes", "single-routes"])
def test_an_upload_presigns_then_puts_exactly_the_signed_headers_and_the_bytes_then_completes(batch, photo):
    cloud = FakeCloud(batch=batch)

    run = run_upload(cloud, [photo])

    assert cloud.presign_bodies == [
        {"fileName": photo.name, "fileType": "image/png", "fileSize": photo.size, "sha256": photo.sha256}
    ]
    grant = cloud.grants[0]
    [(put, body)] = cloud.puts
    assert body == photo.path.read_bytes()
    assert str(put.url) == grant["uploadUrl"]
    sent = {name for name in put.headers.keys()} - HTTPX_HEADERS
    assert sent == {name.lower() for name in grant["uploadHeaders"]} | {"content-length"}
    for name, value in grant["uploadHeaders"].items():
        assert put.headers[name] == value
    assert put.headers["content-length"] == str(photo.size)
    assert "x-api-key" not in put.headers
    assert cloud.completed == ["img-1"]
    assert run.sent == photo.size
    assert run.sleeps == []
    [outcome] = run.outcomes
    assert outcome.error is None
    assert outcome.image == {
        "imageId": "img-1",
        "fileName": photo.name,
        "fileSize": photo.size,
        "fileType": "image/png",
        "width": 1,
        "height": 1,
        "sha256": photo.sha256,
        "uploadedAt": None,
        "tags": {},
        "fileUrl": grant["fileUrl"],
        "thumbnailUrl": None,
        "duplicate": False,
    }
    kinds = [type(e) for e in run.events if not isinstance(e, Sent)]
    assert kinds == [Started, Stored, Finished]


def test_without_batch_routes_the_single_routes_serve_and_the_batch_route_is_tried_once(tmp_path):
    cloud = FakeCloud(batch=False)

    run = run_upload(cloud, many(tmp_path, 5))

    assert all(o.image for o in run.outcomes)
    assert cloud.requests_to("/v1/uploads") == 1
    assert cloud.requests_to("/v1/uploads/complete") == 0  # both routes came in together
    assert cloud.requests_to("/v1/upload") == 5


def uploaded_all(cloud: FakeCloud, tmp_path: Path, count: int) -> Run:
    """``count`` files uploaded with 8 workers, every one stored and completed."""
    run = run_upload(cloud, many(tmp_path, count), concurrency=8)
    assert len([o for o in run.outcomes if o.image]) == count
    assert sorted(cloud.completed) == sorted(f"img-{n}" for n in range(1, count + 1))
    return run


def test_many_files_cost_a_few_batch_requests_not_two_per_file(tmp_path):
    cloud = FakeCloud()

    run = uploaded_all(cloud, tmp_path, 250)

    assert cloud.requests_to("/v1/upload") == 0
    assert cloud.requests_to("/v1/uploads") <= 250 // 16 + 1  # batches of 16 and more
    assert cloud.requests_to("/v1/uploads/complete") < 250
    assert max(len(b) for b in [cloud.presign_bodies]) == 250
    assert len({o.image["imageId"] for o in run.outcomes}) == 250


class SlowBatches(FakeCloud):
    """Batch requests that take a while to answer, and the most of each at once. A
    completion takes longer than a stored file waits to be completed (COMPLETE_AFTER), so
    that more files are waiting while one runs, however fast the machine sends them."""

    DELAYS = {"/v1/uploads": 0.05, "/v1/uploads/complete": 0.3}

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.running = {"/v1/uploads": 0, "/v1/uploads/complete": 0}
        self.most = dict(self.running)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path not in self.running:
            return super().__call__(request)
        with self.lock:
            self.running[path] += 1
            self.most[path] = max(self.most[path], self.running[path])
        try:
            time.sleep(self.DELAYS[path])
            return super().__call__(request)
        finally:
            with self.lock:
                self.running[path] -= 1


def test_two_presigns_and_two_completions_run_at_once_and_never_more(tmp_path):
    # While the API answers one batch, the other's URLs feed the PUTs (or its files are
    # verified): a slow API does not leave the PUT workers idle.
    cloud = SlowBatches()

    uploaded_all(cloud, tmp_path, 300)

    assert cloud.most == {"/v1/uploads": 2, "/v1/uploads/complete": 2}


def test_a_put_declares_its_length_even_when_the_grant_does_not_so_it_is_never_chunked(photo):
    # S3 refuses a presigned PUT sent with Transfer-Encoding: chunked.
    cloud = FakeCloud(length_in_headers=False)

    run_upload(cloud, [photo])

    [(put, body)] = cloud.puts
    assert put.headers["content-length"] == str(photo.size) == str(len(body))
    assert "transfer-encoding" not in put.headers


@pytest.mark.parametrize("status", [500, 503, 429])
def test_a_put_that_fails_with_a_server_error_is_retried_on_the_same_url(status, photo):
    cloud = FakeCloud(put_steps=[status, 200])

    run = run_upload(cloud, [photo])

    assert len(cloud.put_urls) == 2
    assert cloud.put_urls[0] == cloud.put_urls[1] == cloud.grants[0]["uploadUrl"]
    assert cloud.presign_count == 1
    assert cloud.completed == ["img-1"]
    assert len(run.sleeps) == 1
    assert run.sent == photo.size


def test_a_put_that_breaks_mid_body_is_retried_and_progress_nets_to_the_file_size(big_photo):
    cloud = FakeCloud(put_steps=["fail-mid-body", 200])

    run = run_upload(cloud, [big_photo])

    assert len(cloud.put_urls) == 2
    assert cloud.puts[-1][1] == big_photo.path.read_bytes()
    assert run.sent == big_photo.size
    assert any(isinstance(e, Sent) and e.nbytes < 0 for e in run.events)  # taken back
    assert len(run.sleeps) == 1
    assert cloud.completed == ["img-1"]


def test_a_put_that_keeps_failing_fails_that_file_after_the_retries_and_deletes_its_record(photo):
    cloud = FakeCloud(put_steps=[503])

    run = run_upload(cloud, [photo], retries=2)

    [outcome] = run.outcomes
    assert outcome.image is None and "HTTP 503" in outcome.error
    assert len(cloud.put_urls) == 3
    assert len(run.sleeps) == 2
    assert cloud.completed == []
    assert cloud.deleted == ["img-1"]  # the abandoned record can never be listed
    assert run.sent == 0


def test_a_put_refused_as_expired_gets_a_fresh_url_and_succeeds(photo):
    cloud = FakeCloud(put_steps=["expired", 200])

    run = run_upload(cloud, [photo])

    assert cloud.presign_count == 2
    assert cloud.put_urls == [cloud.grants[0]["uploadUrl"], cloud.grants[1]["uploadUrl"]]
    assert cloud.completed == ["img-2"]
    assert cloud.deleted == ["img-1"]
    assert run.outcomes[0].image["imageId"] == "img-2"
    assert run.sent == photo.size
    assert run.sleeps == []


def test_a_grant_already_expired_is_replaced_without_putting_to_its_url(photo):
    cloud = FakeCloud(lifetimes=[1, 300])

    run_upload(cloud, [photo])

    assert cloud.presign_count == 2
    assert cloud.put_urls == [cloud.grants[1]["uploadUrl"]]
    assert cloud.completed == ["img-2"]


def test_urls_that_keep_expiring_fail_the_file_without_any_put(photo):
    cloud = FakeCloud(lifetimes=[1])

    run = run_upload(cloud, [photo])

    [outcome] = run.outcomes
    assert "expiring" in outcome.error
    assert cloud.put_urls == []
    assert cloud.presign_count >= 2
    assert cloud.completed == []


@pytest.mark.parametrize("skew_minutes", [5, -5])
def test_a_client_clock_minutes_off_still_uploads(skew_minutes, photo):
    # The server's clock is 5 minutes behind (or ahead of) ours; an older stack gives only
    # expiresAt, which must be read against the server's clock (its Date header).
    server_now = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=skew_minutes)
    cloud = FakeCloud(server_now=server_now, expires_in=False)

    run = run_upload(cloud, [photo])

    assert run.outcomes[0].image is not None
    assert cloud.presign_count == 1


@pytest.mark.parametrize("status", [400, 403, 404])
def test_a_put_refused_by_storage_fails_that_file_and_is_not_retried(status, photo):
    cloud = FakeCloud(put_steps=[status, 200])

    run = run_upload(cloud, [photo])

    assert f"HTTP {status}" in run.outcomes[0].error
    assert len(cloud.put_urls) == 1
    assert cloud.presign_count == 1
    assert run.sleeps == []
    assert cloud.completed == []
    assert cloud.deleted == ["img-1"]


# --- upload_files: many files ------------------------------------------------------------


def test_one_file_refused_does_not_stop_the_others_and_its_error_is_kept(samples, tmp_path):
    rejected = tmp_path / "refused.png"
    rejected.write_bytes(png_bytes(300))  # other bytes than the sample: not a copy of it
    files = [inspect_file(p, LIMIT) for p in (samples["image/png"], rejected, samples["image/gif"])]
    cloud = FakeCloud(reject_names={"refused.png"})

    run = run_upload(cloud, files)

    by_source = {outcome.source: outcome for outcome in run.outcomes}
    assert set(by_source) == {str(local.path) for local in files}
    assert by_source[str(rejected)].error == "fileName refused.png is not allowed"
    assert by_source[str(rejected)].image is None
    for path in (samples["image/png"], samples["image/gif"]):
        assert by_source[str(path)].image["fileName"] == path.name
    assert len(cloud.completed) == 2
    finished = [e.outcome for e in run.events if isinstance(e, Finished)]
    assert finished == run.outcomes


def test_a_file_that_vanished_after_its_check_fails_alone(samples):
    files = [inspect_file(p, LIMIT) for p in (samples["image/png"], samples["image/gif"])]
    samples["image/png"].unlink()
    cloud = FakeCloud()

    run = run_upload(cloud, files, concurrency=1)

    by_source = {outcome.source: outcome for outcome in run.outcomes}
    assert "cannot read it any more" in by_source[str(samples["image/png"])].error
    assert by_source[str(samples["image/gif"])].error is None
    assert len(cloud.completed) == 1


def test_ctrl_c_settles_what_runs_reports_every_file_in_the_gallery_and_says_what_is_left(tmp_path):
    files = many(tmp_path, 40)
    cloud = FakeCloud()
    started = []

    def interrupt_at_the_tenth_put(event) -> None:
        if isinstance(event, Started):
            started.append(event)
            if len(started) == 10:
                os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C, wherever the run is

    with pytest.raises(Interrupted) as caught:
        run_upload(cloud, files, concurrency=4, on_event=interrupt_at_the_tenth_put)

    stop = caught.value
    reported = {o.image["imageId"] for o in stop.outcomes if o.image}
    assert reported, "the files stored before Ctrl-C were not completed and reported"
    # Every record that became ready was reported, and nothing reported is left incomplete.
    assert set(cloud.completed) == reported
    assert len(stop.outcomes) + stop.unsent == len(files)
    assert stop.unsent > 0
    assert len(cloud.puts) < len(files)


# --- duplicates ------------------------------------------------------------------------------


def known_image(local: LocalFile, image_id: str = "already-1") -> dict:
    return {
        "imageId": image_id,
        "fileName": "first-name.png",
        "fileType": local.file_type,
        "fileSize": local.size,
        "width": 1,
        "height": 1,
        "sha256": local.sha256,
        "uploadedAt": "2026-01-01T00:00:00.000000Z",
        "fileUrl": "https://example.test/already",
        "objectKey": "images/already-1/first-name.png",
    }


@pytest.mark.parametrize("batch", [True, False], ids=["batch-routes", "single-routes"])
def test_bytes_in_the_gallery_are_reported_as_that_image_and_never_sent(batch, photo, samples):
    gif = inspect_file(samples["image/gif"], LIMIT)
    cloud = FakeCloud(batch=batch, known={photo.sha256: known_image(photo)})

    run = run_upload(cloud, [photo, gif])

    by_source = {o.source: o for o in run.outcomes}
    dup = by_source[str(photo.path)]
    assert dup.duplicate and dup.error is None
    assert dup.image["imageId"] == "already-1" and dup.image["duplicate"] is True
    assert dup.image["fileName"] == "first-name.png"
    assert not by_source[str(gif.path)].duplicate
    assert by_source[str(gif.path)].image["duplicate"] is False
    assert len(cloud.puts) == 1 and cloud.completed == ["img-2"]
    assert [type(e) for e in run.events if not isinstance(e, Sent) and e.file == photo] == [Finished]


def test_allow_duplicates_asks_for_an_upload_anyway(photo):
    cloud = FakeCloud(known={photo.sha256: known_image(photo)})

    run = run_upload(cloud, [photo], allow_duplicates=True)

    assert cloud.presign_bodies[0]["allowDuplicates"] is True
    assert not run.outcomes[0].duplicate and len(cloud.puts) == 1


def test_files_of_one_run_with_the_same_bytes_are_sent_once_and_the_others_reported_with_it(tmp_path):
    paths = []
    for name in ("one.png", "copy.png", "again.png"):
        path = tmp_path / name
        path.write_bytes(png_bytes(500))
        paths.append(path)
    files = [inspect_file(p, LIMIT) for p in paths]
    cloud = FakeCloud()

    run = run_upload(cloud, files)

    assert len(cloud.presign_bodies) == 1 and len(cloud.puts) == 1
    by_source = {o.source: o for o in run.outcomes}
    assert set(by_source) == {str(p) for p in paths}
    first = by_source[str(paths[0])].image
    assert not first["duplicate"]
    for copy in paths[1:]:
        image = by_source[str(copy)].image
        assert image["duplicate"] is True and image["imageId"] == first["imageId"]
    finished = [e.outcome for e in run.events if isinstance(e, Finished)]
    assert finished == run.outcomes


def test_a_copy_of_a_file_that_failed_fails_too(tmp_path):
    paths = []
    for name in ("refused.png", "copy.png"):
        path = tmp_path / name
        path.write_bytes(png_bytes(500))
        paths.append(path)
    cloud = FakeCloud(reject_names={"refused.png"})

    run = run_upload(cloud, [inspect_file(p, LIMIT) for p in paths])

    copy = next(o for o in run.outcomes if o.source == str(paths[1]))
    assert copy.image is None and "same bytes" in copy.error
