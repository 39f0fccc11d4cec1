"""Uploading files: local checks, presign, a streamed PUT to S3, then ``complete``.

Every file is checked before any request (``inspect_file``): it exists, is a readable regular
file, is not empty, is within the stack's limit, and is a real JPEG/PNG/GIF/WebP by its first
bytes, whatever its name says; its SHA-256 is computed so that S3 and ``complete`` can verify
the bytes. Each upload then asks the API for a presigned URL, PUTs the file as a stream with
exactly the signed headers, and calls ``complete``, which verifies the stored object.

The PUT is retried on transport errors, 5xx and 429 (bounded, backoff with jitter); a URL
that expired before or during the attempts is replaced by a fresh one. A file that fails
does not stop the others. Progress goes to callbacks; cancellation through a
``threading.Event`` (set on Ctrl-C), which the body stream checks between chunks.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import stat
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from .api import ImageApi, RetryPolicy, describe_transport_error, retry_after, transport_errors
from .backend import rules
from .errors import ApiError, FileRejected, UploadRejected

CHUNK = 64 * 1024
URL_ATTEMPTS = 3


@dataclass(frozen=True)
class LocalFile:
    path: Path
    name: str
    size: int
    file_type: str
    sha256: str


@dataclass
class Outcome:
    """What became of one file: ``image`` (the result line) or ``error`` (a sentence)."""

    source: str
    image: dict[str, Any] | None = None
    error: str | None = None


class Cancelled(Exception):
    pass


class UrlExpired(Exception):
    pass


def inspect_file(path: Path, max_bytes: int) -> LocalFile:
    """Check one local file and hash it; FileRejected says what is wrong with it
    (without the path, which the caller shows in front)."""
    try:
        info = path.stat()
    except FileNotFoundError:
        raise FileRejected("no such file.") from None
    except OSError as exc:
        raise FileRejected(f"cannot read it ({exc.strerror}).") from None
    if stat.S_ISDIR(info.st_mode):
        raise FileRejected("is a directory, not an image file.")
    if not stat.S_ISREG(info.st_mode):
        raise FileRejected("is not a regular file.")
    if info.st_size == 0:
        raise FileRejected("is empty.")
    if info.st_size > max_bytes:
        raise FileRejected(
            f"{rules.format_size(info.st_size)} exceeds the limit ({rules.format_size(max_bytes)})."
        )
    if path.name != path.name.encode("utf-8", "replace").decode("utf-8"):
        raise FileRejected("its name is not valid UTF-8; rename the file to upload it.")
    try:
        rules.validate_file_name(path.name)
    except rules.ValidationError as exc:
        raise FileRejected(f"cannot be uploaded under this name ({exc.message}); rename it.") from None
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            head = handle.read(max(rules.SNIFF_BYTES, CHUNK))
            digest.update(head)
            for chunk in iter(lambda: handle.read(1024 * 1024), b""):
                digest.update(chunk)
    except OSError as exc:
        raise FileRejected(f"cannot read it ({exc.strerror}).") from None
    file_type = rules.sniff_type(head)
    if file_type is None:
        raise FileRejected("is not a JPEG, PNG, GIF or WebP image (by its content).")
    return LocalFile(path, path.name, info.st_size, file_type, digest.hexdigest())


def read_paths(stream: BinaryIO) -> list[str]:
    """File paths from a byte stream, one per line (blank lines ignored). Bytes are decoded
    as the file system does, so any name that exists can be given."""
    paths = []
    for line in stream:
        name = os.fsdecode(line.rstrip(b"\r\n"))
        if name.strip():
            paths.append(name)
    return paths


class Uploader:
    def __init__(
        self,
        api: ImageApi,
        http: Any,
        retry: RetryPolicy,
        cancel: threading.Event | None = None,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.timezone.utc),
    ) -> None:
        self.api = api
        self.http = http
        self.retry = retry
        self.cancel = cancel or threading.Event()
        self.clock = clock

    def upload(self, local: LocalFile, on_progress: Callable[[int], None]) -> dict[str, Any]:
        """Upload one checked file; the result line (imageId, fileName, ...) or an error.

        No file is ever half-reported: a URL is given up only after settling its record
        (completed if its bytes did land after all, deleted otherwise), because the bucket's
        notification would otherwise list bytes that this run reported as failed.
        """
        for _ in range(URL_ATTEMPTS):
            grant = self.api.request_upload(local.name, local.file_type, local.size, local.sha256)
            image_id = grant["imageId"]
            try:
                self._put(grant, local, on_progress)
            except UrlExpired:
                image, _ = self._settle(image_id)
                if image is not None:
                    return self._result(local, grant, image)
                continue
            except (ApiError, FileRejected) as exc:
                image, note = self._settle(image_id)
                if image is not None:
                    return self._result(local, grant, image)
                exc.message += note
                raise
            break
        else:
            raise ApiError("the upload URL kept expiring; try again.")
        try:
            image = self.api.complete(image_id)
        except UploadRejected:
            raise  # the server rejected the bytes, deleted them, and never lists them
        except ApiError as exc:
            exc.message += self._abandon(image_id)
            raise
        return self._result(local, grant, image)

    @staticmethod
    def _result(local: LocalFile, grant: dict[str, Any], image: dict[str, Any]) -> dict[str, Any]:
        return {
            "imageId": image.get("imageId", grant["imageId"]),
            "fileName": image.get("fileName", local.name),
            "fileSize": image.get("fileSize", local.size),
            "fileType": image.get("fileType", local.file_type),
            "sha256": local.sha256,
            "fileUrl": image.get("fileUrl", grant.get("fileUrl")),
        }

    def _settle(self, image_id: str) -> tuple[dict[str, Any] | None, str]:
        """After a failed or expired PUT: (the image, "") when its bytes landed after all and
        it is now complete; else (None, note) once its record is deleted (see ``_abandon``)."""
        if self.cancel.is_set():
            return None, ""
        try:
            return self.api.complete(image_id), ""
        except ApiError:
            return None, self._abandon(image_id)

    def _abandon(self, image_id: str) -> str:
        """Delete a record this run gives up on; a note for the error message if that failed."""
        try:
            self.api.delete(image_id)
        except ApiError as exc:
            if exc.status != 404:
                return f" It may still be listed as {image_id}."
        return ""

    def _expired(self, grant: dict[str, Any]) -> bool:
        try:
            expires = dt.datetime.fromisoformat(str(grant["expiresAt"]).replace("Z", "+00:00"))
        except (KeyError, ValueError):
            return False
        return self.clock() >= expires - dt.timedelta(seconds=2)

    def _body(self, path: Path, on_progress: Callable[[int], None], sent: list[int]) -> Iterator[bytes]:
        try:
            handle = open(path, "rb")  # closed by the with below
        except OSError as exc:
            raise FileRejected(f"cannot read it any more ({exc.strerror}).") from None
        with handle:
            while chunk := handle.read(CHUNK):
                if self.cancel.is_set():
                    raise Cancelled()
                sent[0] += len(chunk)
                on_progress(len(chunk))
                yield chunk

    def _put(self, grant: dict[str, Any], local: LocalFile, on_progress: Callable[[int], None]) -> None:
        headers = {str(k): str(v) for k, v in (grant.get("uploadHeaders") or {}).items()}
        headers.setdefault("Content-Type", local.file_type)
        headers["Content-Length"] = str(local.size)
        delays = self.retry.delays()
        while True:
            if self._expired(grant):
                raise UrlExpired()
            sent = [0]
            failure: str
            wait_hint = None
            try:
                response = self.http.put(
                    grant["uploadUrl"], content=self._body(local.path, on_progress, sent), headers=headers
                )
            except transport_errors() as exc:
                failure = describe_transport_error(exc)
            else:
                if response.is_success:
                    return
                text = response.text[:2000]
                if response.status_code == 403 and ("expired" in text.lower()):
                    on_progress(-sent[0])
                    raise UrlExpired()
                if response.status_code not in (429, 500, 502, 503, 504):
                    raise UploadRejected(f"storage refused the upload (HTTP {response.status_code}).")
                failure = f"storage answered HTTP {response.status_code}"
                wait_hint = response
            on_progress(-sent[0])
            delay = next(delays, None)
            if delay is None:
                raise ApiError(f"the upload failed: {failure}.")
            self.retry.sleep(retry_after(wait_hint, delay))


def upload_all(
    files: Iterable[LocalFile],
    uploader: Uploader,
    concurrency: int,
    *,
    on_start: Callable[[LocalFile], Callable[[int], None]],
    on_done: Callable[[LocalFile, Outcome], None],
) -> list[Outcome]:
    """Upload files with ``concurrency`` workers; ``on_done`` sees each outcome as it lands.

    On KeyboardInterrupt: signal cancellation, drop queued files, wait (bounded) for the
    running ones to stop, and re-raise.
    """
    outcomes: list[Outcome] = []
    pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="upload")
    pending: dict[Future[dict[str, Any]], LocalFile] = {}
    try:
        for local in files:
            pending[pool.submit(uploader.upload, local, on_start(local))] = local
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED, timeout=0.5)
            for future in done:
                local = pending.pop(future)
                try:
                    outcome = Outcome(str(local.path), image=future.result())
                except (ApiError, FileRejected, Cancelled) as exc:
                    outcome = Outcome(str(local.path), error=getattr(exc, "message", "cancelled"))
                outcomes.append(outcome)
                on_done(local, outcome)
    except KeyboardInterrupt:
        uploader.cancel.set()
        pool.shutdown(wait=False, cancel_futures=True)
        # Futures cancelled by shutdown() never count as done: wait for the running ones only.
        wait([f for f in pending if not f.cancelled()], timeout=10)
        raise
    pool.shutdown(wait=True)
    return outcomes


def collect_files(paths: list[str], max_bytes: int) -> tuple[list[LocalFile], list[Outcome]]:
    """Check every path; the good files and an Outcome for each bad one."""
    good: list[LocalFile] = []
    bad: list[Outcome] = []
    for raw in paths:
        try:
            good.append(inspect_file(Path(os.path.expanduser(raw)), max_bytes))
        except FileRejected as exc:
            bad.append(Outcome(raw, error=exc.message))
    return good, bad
