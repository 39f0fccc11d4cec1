"""Thumbnails: rendering (Pillow), the ThumbnailFunction against moto, the completion that asks
for one exactly once, thumbnailUrl in the API's images, and a thumbnail that fails."""

from __future__ import annotations

import io
import json
import logging
import struct
import zlib
from typing import Any

import pytest
from PIL import Image

from imgup.backend import handlers, thumbnails
from imgup.backend.settings import Settings
from tests.backend.backend_support import (
    answer_json,
    call_complete,
    call_delete,
    call_get,
    call_list,
    jpeg_bytes,
    key_of,
    s3_event,
    start_upload,
)


def picture(fmt: str, size: tuple[int, int], mode: str = "RGB", **save: Any) -> bytes:
    image = Image.new(mode, size, (200, 80, 40, 128) if mode == "RGBA" else (200, 80, 40))
    out = io.BytesIO()
    image.save(out, fmt, **save)
    return out.getvalue()


def decoded(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


# --- rendering ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "size", "expected"),
    [("JPEG", (1200, 800), (256, 171)), ("PNG", (300, 900), (85, 256)), ("WEBP", (256, 256), (256, 256))],
)
def test_a_thumbnail_is_a_webp_at_most_256_px_on_its_long_side(fmt: str, size, expected) -> None:
    made = thumbnails.render(picture(fmt, size))
    assert made.content_type == "image/webp"
    image = decoded(made.data)
    assert image.format == "WEBP"
    assert image.size == (made.width, made.height) == expected


def test_a_small_image_is_not_enlarged_and_transparency_is_kept() -> None:
    made = thumbnails.render(picture("PNG", (40, 30), "RGBA"))
    image = decoded(made.data)
    assert image.size == (40, 30)
    assert image.mode == "RGBA"


def test_an_animated_gif_gives_its_first_frame() -> None:
    frames = [Image.new("RGB", (500, 500), colour) for colour in ((255, 0, 0), (0, 0, 255))]
    out = io.BytesIO()
    frames[0].save(out, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    image = decoded(thumbnails.render(out.getvalue()).data)
    assert image.size == (256, 256)
    red, green, blue = image.convert("RGB").getpixel((128, 128))
    assert red > 200 and blue < 60


def test_the_exif_orientation_is_applied() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to show
    made = thumbnails.render(picture("JPEG", (400, 200), exif=exif.tobytes()))
    assert (made.width, made.height) == (128, 256)


def _png_claiming(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(b"\0" * 1000))
        + chunk(b"IEND", b"")
    )


def test_a_decompression_bomb_is_refused_before_it_is_decoded() -> None:
    with pytest.raises(thumbnails.ThumbnailFailed, match="too large to render"):
        thumbnails.render(_png_claiming(50_000, 50_000))  # past Pillow's own limit
    with pytest.raises(thumbnails.ThumbnailFailed, match=r"too large to render \(8000 x 8000 pixels\)"):
        thumbnails.render(_png_claiming(8_000, 8_000))  # past the renderer's


@pytest.mark.parametrize("data", [b"not an image at all", jpeg_bytes(), picture("JPEG", (300, 300))[:200]])
def test_bytes_that_cannot_be_decoded_are_a_thumbnail_failure_not_a_crash(data: bytes) -> None:
    with pytest.raises(thumbnails.ThumbnailFailed, match="cannot be decoded"):
        thumbnails.render(data)


# --- the function, against moto ------------------------------------------------------------


def ready(stack, data: bytes, name: str = "photo.jpg", file_type: str = "image/jpeg") -> str:
    started = start_upload(stack, data, file_type=file_type, name=name)
    stack.put(key_of(stack, started["imageId"]), data, file_type)
    answer = call_complete(stack, started["imageId"])
    assert answer["statusCode"] == 200, answer["body"]
    return started["imageId"]


class FakeLambda:
    def __init__(self) -> None:
        self.invocations: list[dict[str, Any]] = []

    def invoke(self, **kwargs: Any) -> dict[str, Any]:
        self.invocations.append(kwargs)
        return {"StatusCode": 202}


@pytest.fixture
def invoked(monkeypatch: pytest.MonkeyPatch) -> FakeLambda:
    fake = FakeLambda()
    monkeypatch.setattr(thumbnails, "_lambda_client", lambda settings: fake)
    return fake


def test_an_image_made_ready_asks_for_its_thumbnail_once_asynchronously(stack, invoked: FakeLambda) -> None:
    stack.env["THUMBNAIL_FUNCTION"] = "imgup-thumbnail"
    data = picture("JPEG", (800, 600))
    started = start_upload(stack, data, file_type="image/jpeg", name="a.jpg")
    version = stack.put(key_of(stack, started["imageId"]), data, "image/jpeg")
    # The S3 event makes it ready; the client's complete and a repeated event find it done.
    handlers.complete(s3_event(key_of(stack, started["imageId"]), version_id=version), None, stack.env)
    call_complete(stack, started["imageId"])
    handlers.complete(s3_event(key_of(stack, started["imageId"]), version_id=version), None, stack.env)

    assert [(i["FunctionName"], i["InvocationType"]) for i in invoked.invocations] == [
        ("imgup-thumbnail", "Event")
    ]
    assert json.loads(invoked.invocations[0]["Payload"]) == {"imageId": started["imageId"]}


def test_a_batch_completion_asks_for_its_thumbnails_in_few_invocations(stack, invoked: FakeLambda) -> None:
    from tests.backend.backend_support import api_event

    stack.env["THUMBNAIL_FUNCTION"] = "imgup-thumbnail"
    data = picture("JPEG", (40, 30))
    ids, versions = [], []
    for n in range(31):
        started = start_upload(stack, data, file_type="image/jpeg", name=f"{n}.jpg")
        versions.append(stack.put(key_of(stack, started["imageId"]), data, "image/jpeg"))
        ids.append(started["imageId"])
    # the first was made ready by its event, which asked for its thumbnail itself
    handlers.complete(s3_event(key_of(stack, ids[0]), version_id=versions[0]), None, stack.env)
    assert [json.loads(i["Payload"]) for i in invoked.invocations] == [{"imageId": ids[0]}]

    body = json.dumps({"imageIds": ids})
    answer = handlers.complete(api_event("POST", "/uploads/complete", raw_body=body), None, stack.env)

    assert answer["statusCode"] == 200
    payloads = [json.loads(i["Payload"]) for i in invoked.invocations[1:]]
    assert payloads == [{"imageIds": ids[1:26]}, {"imageIds": ids[26:]}]
    assert all(i["InvocationType"] == "Event" for i in invoked.invocations)


def test_without_a_thumbnail_function_nothing_is_asked_and_the_image_is_ready(
    stack, invoked: FakeLambda
) -> None:
    image_id = ready(stack, picture("JPEG", (100, 100)))
    assert invoked.invocations == []
    assert "thumbnailUrl" not in answer_json(call_get(stack, image_id))


def test_a_refused_invocation_never_fails_the_completion(stack, monkeypatch, caplog) -> None:
    class Refusing:
        def invoke(self, **kwargs: Any) -> None:
            raise RuntimeError("AccessDenied")

    monkeypatch.setattr(thumbnails, "_lambda_client", lambda settings: Refusing())
    stack.env["THUMBNAIL_FUNCTION"] = "imgup-thumbnail"
    with caplog.at_level(logging.ERROR, logger="imgup.backend"):
        image_id = ready(stack, picture("JPEG", (100, 100)))
    assert answer_json(call_get(stack, image_id))["imageId"] == image_id
    assert '"outcome": "not_requested"' in caplog.text and "AccessDenied" in caplog.text


def test_the_function_stores_the_thumbnail_beside_the_image_and_the_api_serves_it(stack) -> None:
    image_id = ready(stack, picture("JPEG", (1024, 768)))

    result = thumbnails.handler({"imageId": image_id}, None, stack.env)

    assert result["results"][0]["outcome"] == "made"
    assert f"thumbnails/{image_id}.webp" in stack.objects()
    record = stack.record(image_id)
    assert record["thumbnailKey"] == {"S": f"thumbnails/{image_id}.webp"}
    shown = answer_json(call_get(stack, image_id))
    listed = answer_json(call_list(stack))["images"][0]
    for image in (shown, listed):
        assert f"thumbnails/{image_id}.webp" in image["thumbnailUrl"]
        assert "versionId=" in image["thumbnailUrl"]
        thumb = decoded(stack.fetch(image["thumbnailUrl"]))
        assert thumb.format == "WEBP" and thumb.size == (256, 192)
    again = thumbnails.handler({"imageId": image_id}, None, stack.env)
    assert again["results"][0]["outcome"] == "exists"


def test_a_thumbnail_that_fails_is_logged_and_the_image_stays_listed_without_one(stack, caplog) -> None:
    image_id = ready(stack, jpeg_bytes(width=64, height=64))  # a valid header, no picture behind it

    with caplog.at_level(logging.INFO, logger="imgup.backend"):
        result = thumbnails.handler({"imageId": image_id}, None, stack.env)

    assert result["results"][0]["outcome"] == "failed"
    failed = [
        r for r in caplog.records if r.levelno == logging.ERROR and '"event": "thumbnail"' in r.getMessage()
    ]
    assert failed and "cannot be decoded" in failed[0].getMessage() and image_id in failed[0].getMessage()
    assert "cannot be decoded" in stack.record(image_id)["thumbnailError"]["S"]
    listed = answer_json(call_list(stack))["images"]
    assert [i["imageId"] for i in listed] == [image_id]
    assert "thumbnailUrl" not in listed[0]
    assert not [key for key in stack.objects() if key.startswith("thumbnails/")]


def test_deleting_an_image_deletes_its_thumbnail_and_a_late_thumbnail_does_not_outlive_it(stack) -> None:
    image_id = ready(stack, picture("PNG", (300, 300)), name="p.png", file_type="image/png")
    thumbnails.handler({"imageId": image_id}, None, stack.env)
    assert call_delete(stack, image_id)["statusCode"] == 200
    assert stack.versions() == []

    other = ready(stack, picture("PNG", (300, 300)), name="q.png", file_type="image/png")
    store = handlers.ImageStore(stack.dynamodb, stack.env["TABLE_NAME"])
    real_record = store.record_thumbnail

    def deleted_meanwhile(record: Any, **kwargs: Any) -> bool:
        call_delete(stack, record.image_id)
        return real_record(record, **kwargs)

    store.record_thumbnail = deleted_meanwhile  # type: ignore[method-assign]
    settings = Settings.from_environ(stack.env)
    result = thumbnails.make(settings, stack.s3, store, other)
    assert result["outcome"] == "skipped"
    assert stack.versions() == []


def test_ids_that_are_not_image_ids_are_ignored(stack) -> None:
    assert thumbnails.handler({"imageId": "../../etc"}, None, stack.env) == {"results": []}
    assert thumbnails.handler("nonsense", None, stack.env) == {"results": []}


def test_asking_for_thumbnails_builds_one_lambda_client_per_connection(stack) -> None:
    # Building a boto3 client costs tens of milliseconds: one per completion made a warm
    # CompleteFunction spend half its time there (bench/upload.py, 2026-12-02).
    first = Settings.from_environ({**stack.env, "THUMBNAIL_FUNCTION": "imgup-thumbnail"})
    again = Settings.from_environ({**stack.env, "THUMBNAIL_FUNCTION": "imgup-thumbnail"})
    assert thumbnails._lambda_client(first) is thumbnails._lambda_client(again)
    other = Settings.from_environ({**stack.env, "AWS_REGION": "eu-west-1"})
    assert thumbnails._lambda_client(other) is not thumbnails._lambda_client(first)
    assert thumbnails._lambda_client(other).meta.region_name == "eu-west-1"


def test_tags_changed_while_the_thumbnail_was_made_are_kept(stack) -> None:
    image_id = ready(stack, picture("PNG", (300, 200)), name="t.png", file_type="image/png")
    store = handlers.ImageStore(stack.dynamodb, stack.env["TABLE_NAME"])
    real_record = store.record_thumbnail

    def tagged_meanwhile(record: Any, **kwargs: Any) -> bool:
        current = store.get(record.image_id)
        assert current is not None and store.replace_tags(current, {"trip": "rome"})
        return real_record(record, **kwargs)

    store.record_thumbnail = tagged_meanwhile  # type: ignore[method-assign]
    result = thumbnails.make(Settings.from_environ(stack.env), stack.s3, store, image_id)

    assert result["outcome"] == "made"
    after = store.get(image_id)
    assert after is not None and after.tags == {"trip": "rome"} and after.tags_version == 1
    assert after.thumbnail_key == thumbnails.key_of(image_id)
    assert (after.thumbnail_width, after.thumbnail_height) == (256, 171)
    assert after.status == "ready" and after.uploaded_at and after.sha256


def test_a_thumbnail_is_recorded_without_changing_anything_else_of_the_record(stack) -> None:
    image_id = ready(stack, picture("PNG", (200, 300)), name="u.png", file_type="image/png")
    store = handlers.ImageStore(stack.dynamodb, stack.env["TABLE_NAME"])
    before = stack.dynamodb.get_item(TableName=stack.env["TABLE_NAME"], Key={"imageId": {"S": image_id}})[
        "Item"
    ]

    thumbnails.handler({"imageId": image_id}, None, stack.env)

    after = stack.dynamodb.get_item(TableName=stack.env["TABLE_NAME"], Key={"imageId": {"S": image_id}})[
        "Item"
    ]
    added = {name: after[name] for name in set(after) - set(before)}
    assert {name: after[name] for name in before} == before
    assert set(added) == {"thumbnailKey", "thumbnailVersion", "thumbnailWidth", "thumbnailHeight"} - (
        set() if "thumbnailVersion" in after else {"thumbnailVersion"}
    )
    assert (added["thumbnailWidth"], added["thumbnailHeight"]) == ({"N": "171"}, {"N": "256"})
    assert store.get(image_id).thumbnail_key == thumbnails.key_of(image_id)
