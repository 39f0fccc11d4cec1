"""Local file checks, and the upload flow (presign, streamed PUT, complete) against a fake API
and a fake S3 served by one httpx transport."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import io
import json
import os
import threading
from pathlib import Path

import httpx
import pytest

from imgup.api import ImageApi, RetryPolicy, make_http_client
from imgup.errors import ApiError, ExitCode, FileRejected, UploadRejected
from imgup.uploads import (
    CHUNK,
    Cancelled,
    LocalFile,
    Outcome,
    Uploader,
    collect_files,
    inspect_file,
    read_paths,
    upload_all,
)
from tests.samples import SAMPLES, png_bytes, sha256_hex

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

    assert local == LocalFile(path, path.name, len(SAMPLES[kind]), kind, sha256_hex(SAMPLES[kind]))


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

    assert "is a directory" in rejection(directory)


def test_inspect_file_rejects_an_empty_file(tmp_path):
    path = tmp_path / "empty.png"
    path.write_bytes(b"")

    assert rejection(path) == "is empty."


def test_inspect_file_rejects_a_file_over_the_limit_naming_both_sizes(tmp_path):
    path = tmp_path / "big.png"
    path.write_bytes(png_bytes(padding=3 * 1024 * 1024))

    message = rejection(path, max_bytes=2 * 1024 * 1024)

    assert "exceeds the limit" in message
    assert "3 MB" in message
    assert "(2 MB)" in message


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


# --- a fake API and S3 -----------------------------------------------------------------


class FakeCloud:
    """The image API and the S3 bucket behind it, as one transport handler.

    ``put_steps`` script the S3 answers to successive PUTs (the last repeats): a status code,
    a transport-error class, "expired" (S3's 403 for a URL past its expiry), or
    "fail-mid-body" (read one chunk of the body, then the connection breaks). ``expires``
    gives the ``expiresAt`` of successive grants.
    ``reject_names`` are refused by POST /upload with 400. ``length_in_headers=False`` leaves
    Content-Length out of the grant's ``uploadHeaders``."""

    def __init__(
        self,
        put_steps=(200,),
        expires=(NOW + dt.timedelta(minutes=5),),
        reject_names=(),
        length_in_headers=True,
    ):
        self.length_in_headers = length_in_headers
        self.put_steps = list(put_steps)
        self.expires = list(expires)
        self.reject_names = set(reject_names)
        self.lock = threading.Lock()
        self.log: list[tuple[str, str]] = []  # (method, url) in order
        self.presign_bodies: list[dict] = []
        self.grants: list[dict] = []
        self.puts: list[tuple[httpx.Request, bytes]] = []
        self.completed: list[str] = []
        self.stored: set[str] = set()  # image ids whose PUT landed
        self.deleted: list[str] = []  # records the client abandoned

    def __call__(self, request: httpx.Request) -> httpx.Response:
        with self.lock:
            self.log.append((request.method, str(request.url)))
        if request.url.host == S3_HOST:
            return self.s3(request)
        assert request.headers["x-api-key"] == KEY
        if request.url.path == "/v1/upload":
            return self.presign(request)
        if request.url.path.endswith("/complete"):
            image_id = request.url.path.split("/")[-2]
            with self.lock:
                if image_id not in self.stored:  # as the real API: nothing to complete yet
                    return httpx.Response(409, json={"error": "The file has not been uploaded yet"})
                self.completed.append(image_id)
            return httpx.Response(200, json={"imageId": image_id, "status": "ready"})
        if request.method == "DELETE" and request.url.path.startswith("/v1/images/"):
            with self.lock:
                self.deleted.append(request.url.path.rsplit("/", 1)[-1])
            return httpx.Response(200, json={"message": "Image deleted"})
        return httpx.Response(404, json={"message": "Missing Authentication Token"})

    def presign(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.read())
        with self.lock:
            self.presign_bodies.append(body)
            number = len(self.presign_bodies)
            expires = self.expires.pop(0) if len(self.expires) > 1 else self.expires[0]
        if body["fileName"] in self.reject_names:
            return httpx.Response(400, json={"error": f"fileName {body['fileName']} is not allowed"})
        checksum = base64.b64encode(bytes.fromhex(body["sha256"])).decode()
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
        }
        if not self.length_in_headers:
            del grant["uploadHeaders"]["Content-Length"]
        with self.lock:
            self.grants.append(grant)
        return httpx.Response(200, json=grant)

    def s3(self, request: httpx.Request) -> httpx.Response:
        with self.lock:
            step = self.put_steps.pop(0) if len(self.put_steps) > 1 else self.put_steps[0]
        if step == "fail-mid-body":
            next(iter(request.stream))
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


class HandlerSeesTheStream(httpx.MockTransport):
    """MockTransport reads the whole request body before calling its handler; this one leaves
    the body to the handler, so that a PUT can fail part-way through the stream."""

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        return self.handler(request)


class Progress(list):
    def __call__(self, nbytes: int) -> None:
        self.append(nbytes)


def make_uploader(cloud: FakeCloud, *, retries: int = 3, cancel=None, clock=lambda: NOW):
    sleeps: list[float] = []
    policy = RetryPolicy(retries=retries, sleep=sleeps.append, jitter=lambda: 1.0)
    http = make_http_client(5.0, transport=HandlerSeesTheStream(cloud))
    api = ImageApi(API, KEY, http, policy)
    return Uploader(api, http, policy, cancel=cancel, clock=clock), sleeps


@pytest.fixture
def photo(samples) -> LocalFile:
    return inspect_file(samples["image/png"], LIMIT)


@pytest.fixture
def big_photo(tmp_path) -> LocalFile:
    """A PNG of several chunks, so that a PUT can break after the first one."""
    path = tmp_path / "big.png"
    path.write_bytes(png_bytes(padding=3 * CHUNK))
    return inspect_file(path, LIMIT)


# --- Uploader.upload -------------------------------------------------------------------


def test_an_upload_presigns_then_puts_exactly_the_signed_headers_and_the_bytes_then_completes(photo):
    cloud = FakeCloud()
    uploader, sleeps = make_uploader(cloud)
    progress = Progress()

    result = uploader.upload(photo, progress)

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
    assert [method for method, _ in cloud.log] == ["POST", "PUT", "POST"]
    assert cloud.completed == ["img-1"]
    assert sum(progress) == photo.size
    assert sleeps == []
    assert result == {
        "imageId": "img-1",
        "fileName": photo.name,
        "fileSize": photo.size,
        "fileType": "image/png",
        "sha256": photo.sha256,
        "fileUrl": grant["fileUrl"],
    }


def test_a_put_declares_its_length_even_when_the_grant_does_not_so_it_is_never_chunked(photo):
    # S3 refuses a presigned PUT sent with Transfer-Encoding: chunked.
    cloud = FakeCloud(length_in_headers=False)
    uploader, _ = make_uploader(cloud)

    uploader.upload(photo, Progress())

    [(put, body)] = cloud.puts
    assert put.headers["content-length"] == str(photo.size) == str(len(body))
    assert "transfer-encoding" not in put.headers


@pytest.mark.parametrize("status", [500, 503, 429])
def test_a_put_that_fails_with_a_server_error_is_retried_on_the_same_url(status, photo):
    cloud = FakeCloud(put_steps=[status, 200])
    uploader, sleeps = make_uploader(cloud)
    progress = Progress()

    uploader.upload(photo, progress)

    assert len(cloud.put_urls) == 2
    assert cloud.put_urls[0] == cloud.put_urls[1] == cloud.grants[0]["uploadUrl"]
    assert cloud.presign_count == 1
    assert cloud.completed == ["img-1"]
    assert len(sleeps) == 1
    assert sum(progress) == photo.size


def test_a_put_that_breaks_mid_body_is_retried_and_progress_nets_to_the_file_size(big_photo):
    cloud = FakeCloud(put_steps=["fail-mid-body", 200])
    uploader, sleeps = make_uploader(cloud)
    progress = Progress()

    uploader.upload(big_photo, progress)

    assert len(cloud.put_urls) == 2
    assert cloud.puts[-1][1] == big_photo.path.read_bytes()
    assert sum(progress) == big_photo.size
    assert -CHUNK in progress  # the part sent before the break was taken back
    assert len(sleeps) == 1
    assert cloud.completed == ["img-1"]


def test_a_put_that_keeps_failing_gives_up_after_the_retries_without_completing(photo):
    cloud = FakeCloud(put_steps=[503])
    uploader, sleeps = make_uploader(cloud, retries=2)
    progress = Progress()

    with pytest.raises(ApiError) as caught:
        uploader.upload(photo, progress)

    assert "HTTP 503" in caught.value.message
    assert len(cloud.put_urls) == 3
    assert len(sleeps) == 2
    assert cloud.completed == []
    assert cloud.deleted == ["img-1"]  # the abandoned record can never be listed
    assert sum(progress) == 0


def test_a_put_refused_as_expired_gets_a_fresh_url_and_succeeds(photo):
    cloud = FakeCloud(put_steps=["expired", 200])
    uploader, sleeps = make_uploader(cloud)
    progress = Progress()

    result = uploader.upload(photo, progress)

    assert cloud.presign_count == 2
    assert cloud.put_urls == [cloud.grants[0]["uploadUrl"], cloud.grants[1]["uploadUrl"]]
    assert cloud.completed == ["img-2"]
    assert cloud.deleted == ["img-1"]
    assert result["imageId"] == "img-2"
    assert sum(progress) == photo.size
    assert sleeps == []


def test_a_grant_already_expired_by_the_clock_is_replaced_without_putting_to_its_url(photo):
    cloud = FakeCloud(expires=[NOW - dt.timedelta(minutes=1), NOW + dt.timedelta(minutes=5)])
    uploader, _ = make_uploader(cloud, clock=lambda: NOW)

    uploader.upload(photo, Progress())

    assert cloud.presign_count == 2
    assert cloud.put_urls == [cloud.grants[1]["uploadUrl"]]
    assert cloud.completed == ["img-2"]


def test_urls_that_keep_expiring_end_in_an_api_error_without_any_put(photo):
    cloud = FakeCloud(expires=[NOW - dt.timedelta(seconds=30)])
    uploader, _ = make_uploader(cloud)

    with pytest.raises(ApiError) as caught:
        uploader.upload(photo, Progress())

    assert "expiring" in caught.value.message
    assert cloud.put_urls == []
    assert cloud.presign_count >= 2
    assert cloud.completed == []


@pytest.mark.parametrize("status", [400, 403, 404])
def test_a_put_refused_by_storage_is_upload_rejected_and_not_retried(status, photo):
    cloud = FakeCloud(put_steps=[status, 200])
    uploader, sleeps = make_uploader(cloud)

    with pytest.raises(UploadRejected) as caught:
        uploader.upload(photo, Progress())

    assert f"HTTP {status}" in caught.value.message
    assert len(cloud.put_urls) == 1
    assert cloud.presign_count == 1
    assert sleeps == []
    assert cloud.completed == []


def test_a_set_cancel_event_stops_the_upload_before_any_byte_reaches_storage(photo):
    cloud = FakeCloud()
    cancel = threading.Event()
    cancel.set()
    uploader, _ = make_uploader(cloud, cancel=cancel)

    with pytest.raises(Cancelled):
        uploader.upload(photo, Progress())

    assert cloud.puts == []
    assert cloud.completed == []


# --- upload_all ------------------------------------------------------------------------


def run_all(uploader: Uploader, files: list[LocalFile], concurrency: int = 2):
    started: list[LocalFile] = []
    done: list[tuple[LocalFile, Outcome]] = []
    lock = threading.Lock()

    def on_start(local: LocalFile):
        with lock:
            started.append(local)
        return lambda nbytes: None

    def on_done(local: LocalFile, outcome: Outcome) -> None:
        with lock:
            done.append((local, outcome))

    outcomes = upload_all(files, uploader, concurrency, on_start=on_start, on_done=on_done)
    return outcomes, started, done


def test_upload_all_keeps_going_when_one_file_fails_and_records_its_error(samples, tmp_path):
    rejected = tmp_path / "refused.png"
    rejected.write_bytes(SAMPLES["image/png"])
    files = [inspect_file(p, LIMIT) for p in (samples["image/png"], rejected, samples["image/gif"])]
    cloud = FakeCloud(reject_names={"refused.png"})
    uploader, _ = make_uploader(cloud)

    outcomes, started, done = run_all(uploader, files)

    by_source = {outcome.source: outcome for outcome in outcomes}
    assert set(by_source) == {str(local.path) for local in files}
    assert by_source[str(rejected)].error == "fileName refused.png is not allowed"
    assert by_source[str(rejected)].image is None
    for path in (samples["image/png"], samples["image/gif"]):
        outcome = by_source[str(path)]
        assert outcome.error is None
        assert outcome.image["fileName"] == path.name
    assert len(cloud.completed) == 2
    assert sorted(map(str, (local.path for local in started))) == sorted(by_source)
    assert [outcome for _, outcome in done] == outcomes


def test_upload_all_reports_a_file_that_vanished_after_its_check_and_uploads_the_others(samples):
    files = [inspect_file(p, LIMIT) for p in (samples["image/png"], samples["image/gif"])]
    samples["image/png"].unlink()
    cloud = FakeCloud()
    uploader, _ = make_uploader(cloud)

    outcomes, _, _ = run_all(uploader, files, concurrency=1)

    by_source = {outcome.source: outcome for outcome in outcomes}
    assert by_source[str(samples["image/png"])].error
    assert by_source[str(samples["image/gif"])].error is None
    assert len(cloud.completed) == 1


def test_upload_all_with_cancel_set_marks_every_file_cancelled_and_completes_none(samples):
    files = [inspect_file(p, LIMIT) for p in samples.values()]
    cloud = FakeCloud()
    cancel = threading.Event()
    cancel.set()
    uploader, _ = make_uploader(cloud, cancel=cancel)

    outcomes, _, _ = run_all(uploader, files)

    assert len(outcomes) == len(files)
    assert all(outcome.error == "cancelled" and outcome.image is None for outcome in outcomes)
    assert cloud.puts == []
    assert cloud.completed == []
