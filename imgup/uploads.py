"""Uploading files: local checks, then batched presigns, streamed PUTs and batched completions.

This is the one upload core, used by ``imgup upload``, the benchmarks and the tests. It knows
nothing of the terminal: files go in, ``Outcome``s and events (``on_event``) come out, and the
command renders them.

1. ``collect_files`` checks every file before any request (``inspect_file``): it exists, is a
   readable regular file, is not empty, is within the stack's limit, and is a real JPEG, PNG,
   GIF or WebP by its bytes, whatever its name says; its SHA-256 is computed so that S3 and
   ``complete`` can verify the bytes.
2. ``upload_files`` streams them through the API:
   - presign: ``POST /uploads`` for up to 100 files, two at a time, keeping about two
     batches of grants ahead of the PUT workers, so that they never run dry and grants wait
     a short while only (their URLs expire); a file whose bytes are
     in the gallery already (same SHA-256) is answered with that image and not sent
     (unless ``allow_duplicates``), and so is a second file of a run with the same bytes
     as another, once that one is done;
   - PUT: ``concurrency`` workers each send one file as a stream with exactly the signed
     headers, retrying transport errors, 5xx and 429 (bounded backoff with jitter); a URL
     that expired before or during its attempts is replaced by a fresh one;
   - complete: the files whose PUT ended are completed together, ``POST /uploads/complete``
     for up to 100 files, two at a time, as they come.
   A deployment without the batch routes is served through the single-file routes.

No file is ever half-reported: a URL given up is settled first (completed if its bytes did
land after all, else its record is deleted), because the bucket's ObjectCreated event would
otherwise list bytes that this run reported as failed. On Ctrl-C (``KeyboardInterrupt`` in the
calling thread) the running PUTs stop between chunks and are settled the same way, the files
already sent are completed, and ``Interrupted`` carries every outcome, so that the command can
say what finished and what did not.
"""

from __future__ import annotations

import hashlib
import os
import shlex
import signal
import stat
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, BinaryIO

from .api import MAX_BATCH, ImageApi, RetryPolicy, describe_transport_error, retry_after, transport_errors
from .backend import rules
from .errors import ApiError, FileRejected, UploadRejected

CHUNK = 64 * 1024
URL_ATTEMPTS = 3
"""Upload URLs a file may use up (expired ones) before it fails."""
SETTLE_SECONDS = 20.0
"""How long an interrupted run waits for its running uploads to stop and be settled."""
EXPIRY_MARGIN = 2.0
"""A URL with less life than this left is not used for a PUT."""
PRESIGN_SECONDS = 0.5
"""Seconds of uploads, at the run's rate so far, that one ``POST /uploads`` asks URLs for."""
BATCHES_IN_FLIGHT = 2
"""``POST /uploads`` requests running at once, and ``POST /uploads/complete`` requests: while
the API answers one, the other's URLs feed the PUTs (or its files are verified)."""
COMPLETE_AFTER = 0.1
"""Seconds a stored file waits before it is completed, with the others stored meanwhile: the
bucket's own ObjectCreated event has then usually verified it, and completing costs the API
one read (and the batch is larger)."""


@dataclass(frozen=True)
class LocalFile:
    path: Path
    name: str
    size: int
    file_type: str
    sha256: str
    width: int | None = None
    height: int | None = None
    tags: Mapping[str, str] | None = field(default=None, hash=False)
    """Tags to give the image at upload (already checked: ``rules.validate_tags``)."""


@dataclass
class Outcome:
    """What became of one file: ``image`` (its result) or ``error`` (a sentence)."""

    source: str
    image: dict[str, Any] | None = None
    error: str | None = None
    cancelled: bool = False  # stopped by Ctrl-C before it was uploaded

    @property
    def duplicate(self) -> bool:
        """The bytes were in the gallery already: ``image`` is that image, nothing was sent."""
        return bool(self.image and self.image.get("duplicate"))


# --- events (what a renderer sees) ------------------------------------------------------------


@dataclass(frozen=True)
class Started:
    """The file's PUT begins (again, after a fresh URL)."""

    file: LocalFile


@dataclass(frozen=True)
class Sent:
    """``nbytes`` more of the file were handed to the network; negative when a failed
    attempt's bytes are taken back before a retry."""

    file: LocalFile
    nbytes: int


@dataclass(frozen=True)
class Stored:
    """Storage has the whole file; it is being verified and completed."""

    file: LocalFile


@dataclass(frozen=True)
class Finished:
    """The file is done: uploaded (``outcome.image``) or failed (``outcome.error``)."""

    file: LocalFile
    outcome: Outcome


Event = Started | Sent | Stored | Finished


class Cancelled(Exception):
    pass


class UrlExpired(Exception):
    pass


class Interrupted(Exception):
    """Ctrl-C stopped ``upload_files``; ``outcomes`` holds every file that finished (uploaded
    or failed, including those settled after the interrupt), ``unsent`` counts the rest."""

    def __init__(self, outcomes: list[Outcome], unsent: int) -> None:
        super().__init__("interrupted")
        self.outcomes = outcomes
        self.unsent = unsent


# --- local checks -----------------------------------------------------------------------------


def inspect_file(path: Path, max_bytes: int) -> LocalFile:
    """Check one local file and hash it; FileRejected says what is wrong with it
    (without the path, which the caller shows in front)."""
    try:
        info = path.stat()
    except FileNotFoundError:
        raise FileRejected("no such file.") from None
    except (OSError, ValueError) as exc:
        raise FileRejected(f"cannot read it ({getattr(exc, 'strerror', None) or exc}).") from None
    if stat.S_ISDIR(info.st_mode):
        folder = shlex.quote(str(path).rstrip("/") or "/")
        raise FileRejected(
            f"is a directory, not an image file: give the files in it ({folder}/*), "
            f"or their paths on stdin (find {folder} -type f | imgup upload -)."
        )
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

            def read(offset: int, length: int) -> bytes:
                handle.seek(offset)
                return handle.read(length)

            header = rules.read_image_header(read, info.st_size)
            handle.seek(0)
            for chunk in iter(lambda: handle.read(1024 * 1024), b""):
                digest.update(chunk)
    except OSError as exc:
        raise FileRejected(f"cannot read it ({exc.strerror}).") from None
    if header.file_type is None:
        raise FileRejected("is not a JPEG, PNG, GIF or WebP image (by its content).")
    if not header.is_image:
        label = rules.TYPE_LABELS.get(header.file_type, header.file_type)
        raise FileRejected(f"is not a valid {label} image: {header.problem}.")
    return LocalFile(
        path, path.name, info.st_size, header.file_type, digest.hexdigest(), header.width, header.height
    )


def read_paths(stream: BinaryIO, separator: bytes = b"\n") -> list[str]:
    """File paths from a byte stream, one per line (or per NUL with ``separator=b"\\0"``),
    blank entries ignored. Bytes are decoded as the file system does, so any name that exists
    can be given; a line that cannot be a path (a NUL inside it) is kept, to fail on its own."""
    data = stream.read()
    paths = []
    for entry in data.split(separator):
        if separator == b"\n":
            entry = entry.rstrip(b"\r")
        name = os.fsdecode(entry)
        if name.strip():
            paths.append(name)
    return paths


def collect_files(
    paths: Iterable[str], max_bytes: int, tags: Mapping[str, str] | None = None
) -> tuple[list[LocalFile], list[Outcome]]:
    """Check every path; the good files (to be given ``tags``) and an Outcome for each bad one."""
    good: list[LocalFile] = []
    bad: list[Outcome] = []
    for raw in paths:
        if "\0" in raw:
            bad.append(Outcome(raw.replace("\0", "\\0"), error="a path cannot hold a NUL byte."))
            continue
        try:
            good.append(replace(inspect_file(Path(os.path.expanduser(raw)), max_bytes), tags=tags or None))
        except FileRejected as exc:
            bad.append(Outcome(raw, error=exc.message))
    return good, bad


# --- one file's PUT ---------------------------------------------------------------------------


@dataclass
class Grant:
    """A presigned upload URL for one file, with its headers and the moment it dies."""

    image_id: str
    url: str
    headers: dict[str, str]
    file_url: str | None
    deadline: float  # on time.monotonic()

    @classmethod
    def from_answer(cls, answer: dict[str, Any], api: ImageApi, now: float) -> Grant:
        lifetime: float | None = None
        given = answer.get("expiresIn")
        if isinstance(given, (int, float)) and not isinstance(given, bool):
            lifetime = float(given)
        else:
            lifetime = api.seconds_left(answer)
        return cls(
            image_id=str(answer["imageId"]),
            url=str(answer["uploadUrl"]),
            headers={str(k): str(v) for k, v in (answer.get("uploadHeaders") or {}).items()},
            file_url=answer.get("fileUrl"),
            deadline=now + (lifetime if lifetime is not None else 3600.0),
        )


class Uploader:
    """PUTs one file to its grant's URL, and settles records this run gives up on."""

    def __init__(
        self,
        api: ImageApi,
        retry: RetryPolicy | None = None,
        cancel: threading.Event | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.api = api
        self.http = api.http
        self.retry = retry or api.retry
        self.cancel = cancel or threading.Event()
        self.clock = clock

    def expired(self, grant: Grant) -> bool:
        return self.clock() >= grant.deadline - EXPIRY_MARGIN

    def put(self, local: LocalFile, grant: Grant, on_sent: Callable[[int], None]) -> None:
        """Send the file; UrlExpired, UploadRejected, ApiError, FileRejected or Cancelled."""
        headers = dict(grant.headers)
        headers.setdefault("Content-Type", local.file_type)
        headers["Content-Length"] = str(local.size)  # never chunked: S3 refuses that
        delays = self.retry.delays()
        while True:
            if self.expired(grant):
                raise UrlExpired()
            sent = [0]
            wait_hint = None
            try:
                response = self.http.put(
                    grant.url, content=self._body(local.path, on_sent, sent), headers=headers
                )
            except transport_errors() as exc:
                failure = describe_transport_error(exc)
            else:
                if response.is_success:
                    return
                text = response.text[:2000]
                if response.status_code == 403 and "expired" in text.lower():
                    on_sent(-sent[0])
                    raise UrlExpired()
                if response.status_code not in (429, 500, 502, 503, 504):
                    raise UploadRejected(f"storage refused the upload (HTTP {response.status_code}).")
                failure = f"storage answered HTTP {response.status_code}"
                wait_hint = response
            on_sent(-sent[0])
            if self.cancel.is_set():
                raise Cancelled()
            delay = next(delays, None)
            if delay is None:
                raise ApiError(f"the upload failed: {failure}.")
            self.retry.sleep(retry_after(wait_hint, delay))

    def _body(self, path: Path, on_sent: Callable[[int], None], sent: list[int]) -> Iterator[bytes]:
        try:
            handle = open(path, "rb")  # closed by the with below
        except OSError as exc:
            raise FileRejected(f"cannot read it any more ({exc.strerror}).") from None
        with handle:
            while chunk := handle.read(CHUNK):
                if self.cancel.is_set():
                    raise Cancelled()
                yield chunk
                # The client asks for the next chunk once this one is on its way.
                sent[0] += len(chunk)
                on_sent(len(chunk))

    def settle(self, image_id: str) -> dict[str, Any] | None:
        """After a PUT that failed, expired or was cancelled: the image when its bytes landed
        after all (now complete), else None once its record is deleted."""
        try:
            return self.api.complete(image_id)
        except ApiError:
            self.abandon(image_id)
            return None

    def abandon(self, image_id: str) -> str:
        """Delete a record this run gives up on; a note for the error message if that failed."""
        try:
            self.api.delete(image_id)
        except ApiError as exc:
            if exc.status != 404:
                return f" It may still be listed as {image_id}."
        return ""


def result_of(local: LocalFile, grant: Grant, image: dict[str, Any]) -> dict[str, Any]:
    """The result of an uploaded file: what the API says of the image, with what we know."""
    result = {
        "imageId": image.get("imageId", grant.image_id),
        "fileName": image.get("fileName", local.name),
        "fileSize": image.get("fileSize", local.size),
        "fileType": image.get("fileType", local.file_type),
        "width": image.get("width", local.width),
        "height": image.get("height", local.height),
        "sha256": image.get("sha256") or local.sha256,
        "uploadedAt": image.get("uploadedAt"),
        "tags": image.get("tags", dict(local.tags or {})),
        "fileUrl": image.get("fileUrl", grant.file_url),
        "thumbnailUrl": image.get("thumbnailUrl"),
        "duplicate": False,
    }
    return result


def duplicate_of(local: LocalFile, image: dict[str, Any]) -> dict[str, Any]:
    """The result of a file whose bytes the gallery holds already: that image, as it is."""
    keep = (
        "imageId",
        "fileName",
        "fileSize",
        "fileType",
        "width",
        "height",
        "sha256",
        "uploadedAt",
        "fileUrl",
    )
    result = {name: image.get(name) for name in keep}
    result["sha256"] = result["sha256"] or local.sha256
    result["duplicate"] = True
    return result


# --- the pipeline -----------------------------------------------------------------------------


@dataclass
class _Put:
    """What one PUT task ended with: sent (to complete), expired (needs a new URL) or done."""

    kind: str
    outcome: Outcome | None = None


@dataclass
class _Run:
    """The state of one ``upload_files`` run; only the calling thread changes it."""

    waiting: deque[LocalFile]
    grants: deque[tuple[LocalFile, Grant]] = field(default_factory=deque)
    sent: list[tuple[LocalFile, Grant]] = field(default_factory=list)
    sent_since: float = 0.0  # when the oldest of ``sent`` was stored
    puts: dict[Future[_Put], tuple[LocalFile, Grant]] = field(default_factory=dict)
    presigns: dict[Future[list[dict[str, Any]]], list[LocalFile]] = field(default_factory=dict)
    completes: dict[Future[list[dict[str, Any]]], list[tuple[LocalFile, Grant]]] = field(default_factory=dict)
    attempts: dict[Path, int] = field(default_factory=dict)
    outcomes: list[Outcome] = field(default_factory=list)
    started: float = 0.0
    stored: int = 0  # files whose PUT ended well

    def rate(self, now: float) -> float:
        """Files stored per second so far (0 until one is)."""
        return self.stored / max(now - self.started, 0.05) if self.stored else 0.0

    def busy(self) -> bool:
        return bool(self.waiting or self.grants or self.sent or self.in_flight())

    def in_flight(self) -> list[Future[Any]]:
        """The PUTs, presigns and completions running now."""
        return [*self.puts, *self.presigns, *self.completes]

    def presigning(self) -> int:
        """Files whose upload URLs are being asked for."""
        return sum(len(batch) for batch in self.presigns.values())


def upload_files(
    files: Sequence[LocalFile],
    api: ImageApi,
    *,
    concurrency: int,
    on_event: Callable[[Event], None] = lambda event: None,
    cancel: threading.Event | None = None,
    clock: Callable[[], float] = time.monotonic,
    allow_duplicates: bool = False,
) -> list[Outcome]:
    """Upload checked files; an Outcome for each, in the order they finished.

    ``on_event`` sees every event (Started, Sent, Stored, Finished). Sent events come from
    worker threads; the others from the calling thread. See the module docstring for the
    pipeline, duplicates and Ctrl-C (Interrupted).
    """
    uploader = Uploader(api, cancel=cancel or threading.Event(), clock=clock)
    return _Pipeline(uploader, concurrency, on_event, allow_duplicates).run(files)


class _Pipeline:
    def __init__(
        self,
        uploader: Uploader,
        concurrency: int,
        on_event: Callable[[Event], None],
        allow_duplicates: bool = False,
    ) -> None:
        self.up = uploader
        self.api = uploader.api
        self.concurrency = max(1, concurrency)
        self.on_event = on_event
        self.allow_duplicates = allow_duplicates
        # Files with the same bytes as one before them in the run: sent once, reported with it.
        self.copies: dict[LocalFile, list[LocalFile]] = {}
        # Workers for the PUTs, plus the presigns and completions in flight.
        self._pool = ThreadPoolExecutor(
            max_workers=self.concurrency + 2 * BATCHES_IN_FLIGHT, thread_name_prefix="upload"
        )

    def run(self, files: Sequence[LocalFile]) -> list[Outcome]:
        if not self.allow_duplicates:
            files = self._set_copies_aside(files)
        run = _Run(waiting=deque(files), started=self.up.clock())
        try:
            with _sigint_sets(self.up.cancel):
                while run.busy() and not self.up.cancel.is_set():
                    self._feed(run)
                    futures = run.in_flight()
                    timeout = COMPLETE_AFTER / 2 if run.sent else 0.5
                    done, _ = wait(futures, timeout=timeout, return_when=FIRST_COMPLETED)
                    self._collect(run, done)
                if self.up.cancel.is_set():
                    raise KeyboardInterrupt
        except KeyboardInterrupt:
            self._interrupted(run)
            copies = sum(len(c) for c in self.copies.values())
            raise Interrupted(
                run.outcomes, len(run.waiting) + len(run.grants) + run.presigning() + copies
            ) from None
        finally:
            self._pool.shutdown(wait=False, cancel_futures=True)
        return run.outcomes

    # --- starting work ---------------------------------------------------------------------

    def _feed(self, run: _Run) -> None:
        pool = self._pool
        while (
            run.waiting
            and len(run.presigns) < BATCHES_IN_FLIGHT
            and len(run.grants) + run.presigning() < self._grants_ahead(run)
        ):
            size = self._presign_size(run)
            batch = [run.waiting.popleft() for _ in range(min(size, len(run.waiting)))]
            bodies = [_upload_body(f, self.allow_duplicates) for f in batch]
            run.presigns[pool.submit(self.api.request_uploads, bodies)] = batch
        while run.grants and len(run.puts) < self.concurrency and not self.up.cancel.is_set():
            local, grant = run.grants.popleft()
            if self.up.expired(grant):  # waited too long: never PUT to a dying URL
                self._retry_with_new_url(run, local)
                continue
            self.on_event(Started(local))
            run.puts[pool.submit(self._put, local, grant)] = (local, grant)
        while len(run.completes) < BATCHES_IN_FLIGHT and run.sent and self._complete_now(run):
            self._complete_batch(run)

    def _complete_batch(self, run: _Run) -> None:
        batch, run.sent = run.sent[:MAX_BATCH], run.sent[MAX_BATCH:]
        run.sent_since = self.up.clock()
        run.completes[self._pool.submit(self.api.complete_many, [g.image_id for _, g in batch])] = batch

    def _complete_now(self, run: _Run) -> bool:
        """Whether to complete the stored files now: a full batch, the last of the run, or
        the oldest has waited COMPLETE_AFTER."""
        if len(run.sent) >= MAX_BATCH or not (run.waiting or run.grants or run.puts or run.presigns):
            return True
        return self.up.clock() - run.sent_since >= COMPLETE_AFTER

    def _presign_size(self, run: _Run) -> int:
        """About half a second of the workers' uploads, at least two files per worker and at
        most a batch. A larger batch takes the API longer to answer than the workers take to
        use up the grants in hand (they waited for it, measured), and grants that wait long
        could expire before their PUT."""
        rate = run.rate(self.up.clock())
        return max(2 * self.concurrency, min(MAX_BATCH, int(rate * PRESIGN_SECONDS)))

    def _grants_ahead(self, run: _Run) -> int:
        """Upload URLs to hold or be asking for: two batches, so that the workers never wait
        for the next batch (asking for one takes the API about as long as its PUTs take)."""
        return 2 * self._presign_size(run)

    def _put(self, local: LocalFile, grant: Grant) -> _Put:
        """A worker's task: PUT the file; settle its record when that fails."""
        try:
            self.up.put(local, grant, lambda n: self.on_event(Sent(local, n)))
            return _Put("sent")
        except UrlExpired:
            image = self.up.settle(grant.image_id)
            if image is not None:
                return _Put("done", Outcome(str(local.path), image=result_of(local, grant, image)))
            return _Put("expired")
        except Cancelled:
            image = self.up.settle(grant.image_id)
            if image is not None:
                return _Put("done", Outcome(str(local.path), image=result_of(local, grant, image)))
            return _Put("done", Outcome(str(local.path), error="not uploaded (interrupted).", cancelled=True))
        except UploadRejected as exc:
            note = self.up.abandon(grant.image_id)
            return _Put("done", Outcome(str(local.path), error=exc.message + note))
        except (ApiError, FileRejected) as exc:
            image = self.up.settle(grant.image_id)
            if image is not None:
                return _Put("done", Outcome(str(local.path), image=result_of(local, grant, image)))
            return _Put("done", Outcome(str(local.path), error=exc.message))

    # --- results ---------------------------------------------------------------------------

    def _collect(self, run: _Run, done: Iterable[Future[Any]]) -> None:
        for future in done:
            if future in run.presigns:
                self._presigned(run, future)
            elif future in run.completes:
                self._completed(run, future)
            else:
                self._put_ended(run, future)

    def _presigned(self, run: _Run, future: Future[list[dict[str, Any]]]) -> None:
        batch = run.presigns.pop(future)
        try:
            answers = future.result()
        except ApiError as exc:
            for local in batch:
                self._finish(run, local, Outcome(str(local.path), error=exc.message))
            return
        now = self.up.clock()
        for local, answer in zip(batch, answers, strict=True):
            if answer.get("duplicate") is True and "error" not in answer:
                self._finish(run, local, Outcome(str(local.path), image=duplicate_of(local, answer)))
            elif "error" in answer or "uploadUrl" not in answer:
                self._finish(
                    run, local, Outcome(str(local.path), error=str(answer.get("error") or "refused"))
                )
            else:
                run.grants.append((local, Grant.from_answer(answer, self.api, now)))

    def _put_ended(self, run: _Run, future: Future[_Put]) -> None:
        local, grant = run.puts.pop(future)
        result = future.result()
        if result.kind == "sent":
            self.on_event(Stored(local))
            if not run.sent:
                run.sent_since = self.up.clock()
            run.sent.append((local, grant))
            run.stored += 1
        elif result.kind == "expired":
            self._retry_with_new_url(run, local)
        elif result.outcome is not None:
            self._finish(run, local, result.outcome)

    def _completed(self, run: _Run, future: Future[list[dict[str, Any]]]) -> None:
        batch = run.completes.pop(future)
        try:
            answers = future.result()
        except ApiError as exc:
            for local, grant in batch:
                note = self.up.abandon(grant.image_id)
                self._finish(run, local, Outcome(str(local.path), error=exc.message + note))
            return
        for (local, grant), answer in zip(batch, answers, strict=True):
            if "error" in answer:
                status = answer.get("status")
                note = "" if status in (413, 422) else self.up.abandon(grant.image_id)
                self._finish(run, local, Outcome(str(local.path), error=str(answer["error"]) + note))
            else:
                self._finish(run, local, Outcome(str(local.path), image=result_of(local, grant, answer)))

    def _retry_with_new_url(self, run: _Run, local: LocalFile) -> None:
        run.attempts[local.path] = run.attempts.get(local.path, 0) + 1
        if run.attempts[local.path] >= URL_ATTEMPTS:
            self._finish(
                run, local, Outcome(str(local.path), error="the upload URL kept expiring; try again.")
            )
        else:
            run.waiting.appendleft(local)

    def _finish(self, run: _Run, local: LocalFile, outcome: Outcome) -> None:
        run.outcomes.append(outcome)
        self.on_event(Finished(local, outcome))
        for copy in self.copies.pop(local, []):
            if outcome.image is not None:
                same = Outcome(str(copy.path), image=duplicate_of(copy, outcome.image))
            else:
                same = Outcome(str(copy.path), error=f"has the same bytes as {local.path}, which failed.")
            run.outcomes.append(same)
            self.on_event(Finished(copy, same))

    def _set_copies_aside(self, files: Sequence[LocalFile]) -> list[LocalFile]:
        """The files to send: the first of each SHA-256; the others wait for it."""
        first: dict[str, LocalFile] = {}
        unique: list[LocalFile] = []
        for local in files:
            if local.sha256 in first:
                self.copies.setdefault(first[local.sha256], []).append(local)
            else:
                first[local.sha256] = local
                unique.append(local)
        return unique

    # --- Ctrl-C ----------------------------------------------------------------------------

    def _interrupted(self, run: _Run) -> None:
        """Stop: running PUTs stop between chunks and settle; what was sent is completed."""
        self.up.cancel.set()
        deadline = time.monotonic() + SETTLE_SECONDS
        while True:
            while not run.puts and len(run.completes) < BATCHES_IN_FLIGHT and run.sent:
                self._complete_batch(run)
            futures = run.in_flight()
            if not futures:
                return
            done, _ = wait(
                futures, timeout=max(0.0, deadline - time.monotonic()), return_when=FIRST_COMPLETED
            )
            if not done:
                return
            for future in done:
                if future in run.presigns:  # its records stay pending, invisible, until their TTL
                    run.waiting.extendleft(reversed(run.presigns.pop(future)))
                elif future in run.completes:
                    self._completed(run, future)
                else:
                    local, grant = run.puts.pop(future)
                    result = future.result()
                    if result.kind == "sent":
                        run.sent.append((local, grant))
                    elif result.kind == "expired":  # settled: its record is gone
                        run.waiting.append(local)
                    elif result.outcome is not None:
                        self._finish(run, local, result.outcome)


class _sigint_sets:  # noqa: N801 - a context manager used like a function
    """While it is entered in the main thread, Ctrl-C sets ``event`` (which the run checks at
    safe points) instead of raising anywhere; a second Ctrl-C raises KeyboardInterrupt."""

    def __init__(self, event: threading.Event) -> None:
        self.event = event
        self.previous: Any = None

    def __enter__(self) -> None:
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGINT, self._handle)

    def _handle(self, signum: int, frame: Any) -> None:
        if self.event.is_set():
            raise KeyboardInterrupt
        self.event.set()

    def __exit__(self, *exc: object) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)


def _upload_body(local: LocalFile, allow_duplicates: bool = False) -> dict[str, Any]:
    body: dict[str, Any] = {
        "fileName": local.name,
        "fileType": local.file_type,
        "fileSize": local.size,
        "sha256": local.sha256,
    }
    if local.tags:
        body["tags"] = dict(local.tags)
    if allow_duplicates:
        body["allowDuplicates"] = True
    return body
