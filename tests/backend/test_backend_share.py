"""Share links: POST /images/{imageId}/share signs a token with the stack's share secret;
GET /share/{token} (no API key) redirects to a fresh presigned GET that lives no longer than
the link, and answers 410 once it expired or the image is gone, 404 for a forged token."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import parse_qs, urlsplit

import boto3
import pytest
from backend_support import (
    PNG,
    REGION,
    Stack,
    answer_json,
    api_event,
    call_delete,
    start_upload,
    upload_ready,
)

from imgup.backend import handlers, sharing
from imgup.backend.settings import share_secret

SECRET = "s" * 40 + "-the-share-secret"
NOW = datetime(2026, 11, 25, 12, 0, 0, tzinfo=timezone.utc)


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(handlers, "clock", fake)
    return fake


@pytest.fixture
def shared(stack: Stack) -> Stack:
    """The stack with its share secret in Secrets Manager, named in the function's environment."""
    client = boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION
    ).client("secretsmanager")
    client.create_secret(Name="imgup-share-secret", SecretString=SECRET)
    share_secret.cache_clear()  # a value read in an earlier test's moto account
    stack.env["SHARE_SECRET_ID"] = "imgup-share-secret"
    return stack


def call_share(stack: Stack, image_id: str, body: Any = None, raw: str | None = None) -> dict[str, Any]:
    event = api_event(
        "POST", "/images/{imageId}/share", path_params={"imageId": image_id}, body=body, raw_body=raw
    )
    return handlers.images(event, None, stack.env)


def open_share(stack: Stack, path: str) -> dict[str, Any]:
    token = path.removeprefix("/share/")
    event = api_event("GET", "/share/{token}", path_params={"token": token})
    del event["headers"]["x-api-key"]  # a browser has no API key
    return handlers.images(event, None, stack.env)


def link(stack: Stack, image_id: str, seconds: int = 3600) -> str:
    answer = call_share(stack, image_id, {"expiresIn": seconds})
    assert answer["statusCode"] == 200, answer["body"]
    return answer_json(answer)["sharePath"]


def test_a_share_link_redirects_to_the_image_for_its_whole_life(shared: Stack, clock: Clock) -> None:
    image_id = upload_ready(shared, PNG)
    answer = answer_json(call_share(shared, image_id, {"expiresIn": 7200}))
    assert answer["imageId"] == image_id and answer["expiresIn"] == 7200
    assert answer["expiresAt"] == "2026-11-25T14:00:00.000000Z"
    assert answer["sharePath"].startswith("/share/")

    for later in (0, 3600, 7199):
        clock.now = NOW + timedelta(seconds=later)
        opened = open_share(shared, answer["sharePath"])
        assert opened["statusCode"] == 302
        location = opened["headers"]["Location"]
        assert json.loads(opened["body"])["url"] == location
        assert shared.fetch(location) == PNG
        lives = int(parse_qs(urlsplit(location).query)["X-Amz-Expires"][0])
        assert lives <= min(7200 - later, handlers.SHARE_REDIRECT_SECONDS)


def test_a_link_works_up_to_its_last_moment_and_not_after(shared: Stack, clock: Clock) -> None:
    path = link(shared, upload_ready(shared, PNG), 10)
    clock.now = NOW + timedelta(seconds=9.9)
    opened = open_share(shared, path)
    assert opened["statusCode"] == 302
    assert parse_qs(urlsplit(opened["headers"]["Location"]).query)["X-Amz-Expires"] == ["1"]
    clock.now = NOW + timedelta(seconds=10)
    assert open_share(shared, path)["statusCode"] == 410


def test_a_link_made_within_a_second_lives_at_least_as_long_as_asked(shared: Stack, clock: Clock) -> None:
    clock.now = NOW + timedelta(seconds=0.25)
    answer = answer_json(call_share(shared, upload_ready(shared, PNG), {"expiresIn": 60}))
    assert answer["expiresAt"] == "2026-11-25T12:01:01.000000Z"


def test_an_expired_link_answers_410_with_when_it_expired(shared: Stack, clock: Clock) -> None:
    path = link(shared, upload_ready(shared, PNG), 60)
    clock.now = NOW + timedelta(seconds=60)
    opened = open_share(shared, path)
    assert opened["statusCode"] == 410
    assert answer_json(opened) == {
        "error": "This share link has expired",
        "expiredAt": "2026-11-25T12:01:00.000000Z",
    }


def test_the_link_of_a_deleted_image_answers_410(shared: Stack, clock: Clock) -> None:
    image_id = upload_ready(shared, PNG)
    path = link(shared, image_id)
    call_delete(shared, image_id)
    opened = open_share(shared, path)
    assert opened["statusCode"] == 410 and "no longer" in answer_json(opened)["error"]


def _forgeries(path: str) -> list[str]:
    token = path.removeprefix("/share/")
    image_id, expires, mac = token.split(".")
    other_id = "0b7e2c1e-8a4f-4d7a-9c55-2f0a5f1b3c4d"
    return [
        f"{other_id}.{expires}.{mac}",  # another image
        f"{image_id}.{int(expires) + 86400}.{mac}",  # a longer life
        f"{image_id}.{expires}.{mac[:-1]}{'A' if mac[-1] != 'A' else 'B'}",  # another MAC
        f"{image_id}.{expires}",  # truncated
        token + "x",
        "..",
        "%00",
        "a" * 500,
        sharing.make_token(b"another secret entirely, long enough", image_id, int(expires)),
    ]


def test_a_forged_or_damaged_token_answers_404(shared: Stack, clock: Clock) -> None:
    path = link(shared, upload_ready(shared, PNG))
    for forged in _forgeries(path):
        opened = open_share(shared, "/share/" + forged)
        assert opened["statusCode"] == 404, forged
        assert "not valid" in answer_json(opened)["error"]


def test_only_a_ready_image_can_be_shared(shared: Stack, clock: Clock) -> None:
    pending = start_upload(shared, PNG)["imageId"]
    assert call_share(shared, pending, {"expiresIn": 60})["statusCode"] == 404
    assert call_share(shared, "0b7e2c1e-8a4f-4d7a-9c55-2f0a5f1b3c4d")["statusCode"] == 404


def test_without_a_body_a_link_lives_one_hour(shared: Stack, clock: Clock) -> None:
    answer = answer_json(call_share(shared, upload_ready(shared, PNG)))
    assert answer["expiresIn"] == 3600


@pytest.mark.parametrize(
    "body",
    [
        {"expiresIn": 0},
        {"expiresIn": 604801},
        {"expiresIn": 1.5},
        {"expiresIn": "1h"},
        {"expiresIn": True},
        [1],
    ],
)
def test_a_life_that_is_not_1_second_to_7_days_is_refused(shared: Stack, clock: Clock, body: Any) -> None:
    answer = call_share(shared, upload_ready(shared, PNG), body)
    assert answer["statusCode"] == 400
    assert answer_json(answer)["error"]


def test_seven_days_is_allowed(shared: Stack, clock: Clock) -> None:
    answer = answer_json(call_share(shared, upload_ready(shared, PNG), {"expiresIn": 604800}))
    assert answer["expiresAt"] == "2026-12-02T12:00:00.000000Z"


def test_a_function_without_the_share_secret_fails_with_a_500_that_says_nothing(shared: Stack, clock) -> None:
    image_id = upload_ready(shared, PNG)
    del shared.env["SHARE_SECRET_ID"]
    answer = call_share(shared, image_id)
    assert answer["statusCode"] == 500
    assert answer_json(answer)["error"] == "Internal server error"


def test_tokens_round_trip_and_refuse_anything_else() -> None:
    secret = b"x" * 40
    token = sharing.make_token(secret, "0b7e2c1e-8a4f-4d7a-9c55-2f0a5f1b3c4d", 1_800_000_000)
    assert sharing.read_token(secret, token) == sharing.Share(
        "0b7e2c1e-8a4f-4d7a-9c55-2f0a5f1b3c4d", 1_800_000_000
    )
    assert sharing.read_token(b"y" * 40, token) is None
    assert sharing.read_token(secret, None) is None
    assert sharing.read_token(b"", token) is None
