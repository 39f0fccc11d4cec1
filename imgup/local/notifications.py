"""S3 ObjectCreated notifications for the local stack.

moto ignores a bucket's NotificationConfiguration, so the wiring comes from the deployed
templates (``provision.stack_buckets``, read once per deploy and kept in the catalog): every
bucket's ``LambdaConfigurations``, resolved to physical names. The server reports each
object-creating S3 request that succeeded, with what S3 itself puts in the event (key, size,
ETag, version id); matching events are delivered to the function in a background thread,
asynchronously, as S3 does, each with a sequencer that grows with every event.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import json
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote_plus

from .catalog import Catalog
from .lambdas import LambdaRunner
from .provision import BucketSpec, stack_buckets
from .wire import MAX_WAIT, Tally, wait_for_quiet

log = logging.getLogger("imgup.local")


@dataclass(frozen=True)
class Subscription:
    function: str  # name or ARN
    events: tuple[str, ...]
    prefix: str
    suffix: str

    def wants(self, event_name: str, key: str) -> bool:
        return (
            key.startswith(self.prefix)
            and key.endswith(self.suffix)
            and any(fnmatch.fnmatchcase(event_name, pattern) for pattern in self.events)
        )


@dataclass(frozen=True)
class CreatedObject:
    """What S3 knows of an object when it announces it. ``size`` None: look it up."""

    bucket: str
    key: str
    event_name: str  # e.g. ObjectCreated:Put
    size: int | None
    etag: str = ""
    version_id: str | None = None


def subscriptions_in(buckets: list[BucketSpec]) -> dict[str, list[Subscription]]:
    found: dict[str, list[Subscription]] = {}
    for bucket in buckets:
        config = bucket.properties.get("NotificationConfiguration") or {}
        for item in config.get("LambdaConfigurations") or []:
            function = item.get("Function")
            target = _logical_target(function)
            function_id = bucket.names.get(target, target) if target else function
            rules = ((item.get("Filter") or {}).get("S3Key") or {}).get("Rules") or []
            values = {str(r.get("Name", "")).lower(): str(r.get("Value", "")) for r in rules}
            event = item.get("Event")
            events = tuple(event) if isinstance(event, list) else (str(event),)
            if isinstance(function_id, str):
                found.setdefault(bucket.name, []).append(
                    Subscription(function_id, events, values.get("prefix", ""), values.get("suffix", ""))
                )
    return found


def _logical_target(value: Any) -> str | None:
    if isinstance(value, dict):
        if "Fn::GetAtt" in value:
            return value["Fn::GetAtt"][0]
        if "Ref" in value:
            return value["Ref"]
    return None


class Sequencer:
    """S3's ``sequencer``: hex strings that sort in the order of the events."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last = 0

    def next(self) -> str:
        with self._lock:
            self._last = max(time.time_ns(), self._last + 1)
            return f"{self._last:018X}"


class NotificationRouter:
    """Delivers S3 events to their subscribed functions in the background, as S3 does: at
    a quiet moment (``wire.wait_for_quiet``, like asynchronous invocations), or at most
    ``max_wait`` seconds late. An uploading client completes its uploads itself; the event is
    the backstop, and on AWS would run beside the uploads instead of taking turns with them."""

    def __init__(
        self,
        runner: LambdaRunner,
        catalog: Catalog,
        workers: int = 4,
        quiet_for: Callable[[], float] | None = None,
        max_wait: float = MAX_WAIT,
    ) -> None:
        self.runner = runner
        self.catalog = catalog
        self.sequencer = Sequencer()
        self.delivered = Tally()
        self.submitted = Tally()
        self.settled = Tally()
        self.quiet_for = quiet_for
        self.max_wait = max_wait
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="s3-events")

    @property
    def pending(self) -> int:
        """Events written and not yet delivered (or found to have no subscriber)."""
        return self.submitted.value - self.settled.value

    def buckets(self, region: str) -> list[BucketSpec]:
        """The region's deployed buckets (the templates are read once per deploy)."""
        return self.catalog.get(
            region, "buckets", lambda: stack_buckets(self.runner.clients("cloudformation", region))
        )

    def wiring(self, region: str) -> dict[str, list[Subscription]]:
        return self.catalog.get(region, "wiring", lambda: subscriptions_in(self.buckets(region)))

    def object_created(self, region: str, created: CreatedObject) -> None:
        sequencer = self.sequencer.next()  # taken now: events sort in the order of the writes
        self.submitted.add()
        self._pool.submit(self._deliver, region, created, sequencer, (time.monotonic(), time.time()))

    def _deliver(
        self, region: str, created: CreatedObject, sequencer: str, written: tuple[float, float]
    ) -> None:
        try:
            self._deliver_now(region, created, sequencer, written)
        finally:
            self.settled.add()

    def _deliver_now(
        self, region: str, created: CreatedObject, sequencer: str, written: tuple[float, float]
    ) -> None:
        """``written``: when the object was written (``time.monotonic()``, ``time.time()``)."""
        try:
            subscribers = [
                sub
                for sub in self.wiring(region).get(created.bucket, [])
                if sub.wants(f"s3:{created.event_name}", created.key)
            ]
            if not subscribers:
                return
            wait_for_quiet(self.quiet_for, written[0], max_wait=self.max_wait)
            if created.size is None:
                created = self._completed(region, created)
            event = s3_event(region, created, sequencer, at=written[1])
            log.info(
                "s3 event %s %s %s",
                created.event_name,
                created.bucket,
                json.dumps(event["Records"][0]["s3"]["object"]),
            )
            for sub in subscribers:
                function = self.runner.function(region, sub.function)
                self.runner.invoke(region, function, event)
                self.delivered.add()
        except Exception:
            log.exception(
                "delivering %s for s3://%s/%s failed", created.event_name, created.bucket, created.key
            )

    def _completed(self, region: str, created: CreatedObject) -> CreatedObject:
        """A copied or multipart object's size and ETag, which its request did not carry."""
        version = {"VersionId": created.version_id} if created.version_id else {}
        head = self.runner.clients("s3", region).head_object(
            Bucket=created.bucket, Key=created.key, **version
        )
        return CreatedObject(
            created.bucket,
            created.key,
            created.event_name,
            int(head["ContentLength"]),
            created.etag or head.get("ETag", ""),
            created.version_id or head.get("VersionId"),
        )

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=False)


def s3_event(region: str, created: CreatedObject, sequencer: str, at: float | None = None) -> dict[str, Any]:
    """The event S3 sends: the key URL-encoded (a space as ``+``), the ETag without quotes,
    ``versionId`` only for a versioned bucket; its time is ``at`` (the write's), else now."""
    moment = (
        dt.datetime.now(dt.timezone.utc) if at is None else dt.datetime.fromtimestamp(at, dt.timezone.utc)
    )
    now = moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    obj: dict[str, Any] = {
        "key": quote_plus(created.key, safe="/"),
        "size": created.size or 0,
        "eTag": created.etag.strip('"'),
    }
    if created.version_id and created.version_id != "null":
        obj["versionId"] = created.version_id
    obj["sequencer"] = sequencer
    return {
        "Records": [
            {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "awsRegion": region,
                "eventTime": now,
                "eventName": created.event_name,
                "userIdentity": {"principalId": "AWS:imgup-local"},
                "requestParameters": {"sourceIPAddress": "127.0.0.1"},
                "responseElements": {"x-amz-request-id": sequencer[-16:], "x-amz-id-2": "imgup-local"},
                "s3": {
                    "s3SchemaVersion": "1.0",
                    "configurationId": "imgup-local",
                    "bucket": {
                        "name": created.bucket,
                        "ownerIdentity": {"principalId": "imgup-local"},
                        "arn": f"arn:aws:s3:::{created.bucket}",
                    },
                    "object": obj,
                },
            }
        ]
    }
