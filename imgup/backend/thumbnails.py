"""Thumbnails: a small rendition of each ready image, made on the server side.

When a completion makes an image ready (``handlers._complete``: the call that made the
transition, not a second check), it asks for a thumbnail with an asynchronous invocation of
the ThumbnailFunction (``request``; its name is ``THUMBNAIL_FUNCTION`` in the CompleteFunction's
environment). That function (``handler``) reads the verified version of the image, renders
it at most ``SIZE`` px on its long side as WebP (``render``), stores it beside the image under
``thumbnails/<imageId>.webp``, and records its key, version and size on the image's record,
so that every listing hands out a presigned GET of it (``thumbnailUrl``).

Only ``render`` needs an image library (Pillow). It is imported there and nowhere else, and the
deployed ThumbnailFunction gets it from a layer (the manylinux wheel, packaged by
``imgup.packaging.build_pillow_layer``), so the other handlers stay standard library plus
boto3. The local stack runs the same handler in-process, with the Pillow of imgup's own
environment, and serves the asynchronous invocation itself.

A thumbnail that cannot be made (a file Pillow cannot decode, a decompression bomb) is not an
error of the image: the image stays listed without ``thumbnailUrl``, the reason goes to the
record (``thumbnailError``) and to the log. A failure to reach S3 or DynamoDB raises, so that
Lambda retries the invocation (twice, then the dead-letter queue); making a thumbnail again
is harmless.
"""

from __future__ import annotations

import io
import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from . import rules, storage
from .settings import Settings, clients, lambda_client

logger = logging.getLogger(__name__.rpartition(".")[0] or __name__)
logger.setLevel(logging.INFO)

SIZE = 256
"""The longest side of a thumbnail, in pixels."""
CONTENT_TYPE = "image/webp"
QUALITY = 80
MAX_PIXELS = 40_000_000
"""The most pixels an image may have to be rendered: more is a decompression bomb (a 5 MiB
PNG can claim 100,000 x 100,000), refused before it is decoded."""
PREFIX = "thumbnails/"


class ThumbnailFailed(Exception):
    """The image cannot be rendered; ``reason`` says why, for a person."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Thumbnail:
    data: bytes
    width: int
    height: int
    content_type: str = CONTENT_TYPE


def key_of(image_id: str) -> str:
    if not rules.is_image_id(image_id):
        raise ValueError("not an image id")
    return f"{PREFIX}{image_id}.webp"


def render(data: bytes, size: int = SIZE) -> Thumbnail:
    """A WebP of at most ``size`` px on its long side (never enlarged), upright as the
    image's EXIF orientation says, the first frame of an animation, transparency kept."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
            if width * height > MAX_PIXELS:
                raise ThumbnailFailed(f"the image is too large to render ({width} x {height} pixels)")
            image.draft("RGB", (size, size))  # JPEG: decode at a reduced scale, much faster
            frame = ImageOps.exif_transpose(image)
            frame = frame.convert("RGBA" if _has_alpha(frame) else "RGB")
            frame.thumbnail((size, size), Image.Resampling.LANCZOS)
            out = io.BytesIO()
            frame.save(out, "WEBP", quality=QUALITY, method=4)
            return Thumbnail(out.getvalue(), frame.width, frame.height)
    except ThumbnailFailed:
        raise
    except Image.DecompressionBombError:
        raise ThumbnailFailed(
            "the image is too large to render (more pixels than a decompression bomb)"
        ) from None
    except UnidentifiedImageError as exc:
        raise ThumbnailFailed(f"the image cannot be decoded ({type(exc).__name__})") from None
    except (OSError, ValueError, SyntaxError, EOFError) as exc:  # what Pillow raises on broken data
        raise ThumbnailFailed(
            f"the image cannot be decoded ({str(exc)[:200] or type(exc).__name__})"
        ) from None


def _has_alpha(image: Any) -> bool:
    return image.mode in {"RGBA", "LA", "PA"} or (image.mode == "P" and "transparency" in image.info)


# --- asking for one ----------------------------------------------------------------------


PER_INVOCATION = 25
"""The most images one invocation makes thumbnails of (a batch completion asks for up to 100):
25 large JPEGs take a few seconds of the function's 30."""


def request(settings: Settings, *image_ids: str, lambda_client: Any = None) -> bool:
    """Ask the ThumbnailFunction, asynchronously, for the images' thumbnails: one invocation
    per PER_INVOCATION images (``{"imageId": ...}`` for one, ``{"imageIds": [...]}`` for more).
    False (and a log line) when there is no such function (a stack from before thumbnails) or
    an invocation was refused: the images are ready either way."""
    if not settings.thumbnail_function or not image_ids:
        return False
    asked = True
    for start in range(0, len(image_ids), PER_INVOCATION):
        chunk = list(image_ids[start : start + PER_INVOCATION])
        payload = {"imageId": chunk[0]} if len(chunk) == 1 else {"imageIds": chunk}
        try:
            client = lambda_client or _lambda_client(settings)
            client.invoke(
                FunctionName=settings.thumbnail_function,
                InvocationType="Event",
                Payload=json.dumps(payload).encode(),
            )
        except Exception as exc:  # noqa: BLE001 - a thumbnail never fails a completion
            _log(
                logging.ERROR,
                {"event": "thumbnail", **payload, "outcome": "not_requested", "error": str(exc)[:500]},
            )
            asked = False
    return asked


def _lambda_client(settings: Settings) -> Any:
    return lambda_client(settings.connection)


# --- making one --------------------------------------------------------------------------


def make(settings: Settings, s3: Any, store: storage.ImageStore, image_id: str) -> dict[str, Any]:
    """Make, store and record the thumbnail of one image; what happened, for the log."""
    record = store.get(image_id)
    if record is None or record.status != storage.READY:
        return {"outcome": "skipped", "imageId": image_id, "reason": "not a ready image"}
    if record.thumbnail_key:
        return {"outcome": "exists", "imageId": image_id}
    data = _read(s3, settings, record)
    if data is None:
        return {"outcome": "skipped", "imageId": image_id, "reason": "the image's object is gone"}
    try:
        thumbnail = render(data)
    except ThumbnailFailed as failed:
        store.set_thumbnail(image_id, error=failed.reason)
        return {"outcome": "failed", "imageId": image_id, "reason": failed.reason}
    key = key_of(image_id)
    written = s3.put_object(
        Bucket=settings.bucket_name,
        Key=key,
        Body=thumbnail.data,
        ContentType=thumbnail.content_type,
        CacheControl="private, max-age=31536000, immutable",
    )
    version = storage.version_of(written.get("VersionId"))
    if not store.record_thumbnail(
        record, key=key, version_id=version, width=thumbnail.width, height=thumbnail.height
    ):
        # The image was deleted meanwhile: its thumbnail must not outlive it.
        storage.delete_all_versions(s3, bucket=settings.bucket_name, prefix=key)
        return {"outcome": "skipped", "imageId": image_id, "reason": "deleted meanwhile"}
    return {
        "outcome": "made",
        "imageId": image_id,
        "bytes": len(thumbnail.data),
        "width": thumbnail.width,
        "height": thumbnail.height,
    }


def _read(s3: Any, settings: Settings, record: storage.ImageRecord) -> bytes | None:
    """The verified version's bytes (at most the size limit), or None when it is gone."""
    from botocore.exceptions import ClientError

    version = {"VersionId": record.version_id} if record.version_id else {}
    try:
        answer = s3.get_object(Bucket=settings.bucket_name, Key=record.s3_key, **version)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in {"NoSuchKey", "NoSuchVersion", "404"}:
            return None
        raise
    with answer["Body"] as body:
        data: bytes = body.read(settings.max_upload_bytes + 1)
    return data


def handler(event: Any, context: Any = None, environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The ThumbnailFunction: ``{"imageId": ...}`` (or ``{"imageIds": [...]}``)."""
    import os

    env = os.environ if environ is None else environ
    settings = Settings.from_environ(env)
    connection = clients(settings.connection)
    store = storage.ImageStore(connection.dynamodb, settings.table_name)
    ids = _ids(event)
    results = []
    for image_id in ids:
        started = time.monotonic()
        result = make(settings, connection.s3, store, image_id)
        result["durationMs"] = round((time.monotonic() - started) * 1000, 1)
        _log(
            logging.ERROR if result["outcome"] == "failed" else logging.INFO, {"event": "thumbnail", **result}
        )
        results.append(result)
    return {"results": results}


def _ids(event: Any) -> list[str]:
    if not isinstance(event, dict):
        return []
    many = event.get("imageIds")
    given: list[Any] = many if isinstance(many, list) else [event.get("imageId")]
    return [str(i) for i in given if rules.is_image_id(i)]


def _log(level: int, fields: Mapping[str, Any]) -> None:
    logger.log(level, json.dumps({k: v for k, v in fields.items() if v is not None}, default=str))
