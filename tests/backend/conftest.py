"""Fixtures for the backend tests: fake credentials, the function environment of the template,
and a moto account holding the contract's table and bucket."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

# The helpers module sits beside this file; make it importable whatever pytest's import mode.
if str(Path(__file__).parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).parent))

from backend_support import BUCKET, REGION, TABLE, Stack, create_table  # noqa: E402


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Fake credentials in the process and the function environment the template would set."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    return {
        "TABLE_NAME": TABLE,
        "BUCKET_NAME": BUCKET,
        "MAX_UPLOAD_BYTES": str(5 * 1024 * 1024),
        "URL_EXPIRY_SECONDS": "300",
        "DOWNLOAD_URL_EXPIRY_SECONDS": "3600",
        "PENDING_TTL_SECONDS": "86400",
        "ALLOWED_ORIGIN": "*",
        "AWS_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }


_CLIENTS: dict[str, object] = {}


def _client(service: str) -> object:
    # boto3 clients are slow to build (a fresh session parses the service model again) and
    # moto intercepts any client created after moto was imported, so build them once.
    if service not in _CLIENTS:
        session = boto3.session.Session(
            aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION
        )
        _CLIENTS[service] = session.client(service)
    return _CLIENTS[service]


_MOTO_CALLS = threading.Lock()


def _one_moto_call_at_a_time() -> None:
    """moto in-process is not thread-safe: two threads' calls interleave inside it (a
    DynamoDB write iterating a dictionary another write grows; an S3 read of a version that
    a delete is closing), where AWS applies each request whole. The handlers' own race
    tests (the complete call against the S3 event) run threads, so moto takes their calls
    one at a time, as each AWS request is atomic; the handlers' logic still races freely."""
    from moto.core.botocore_stubber import BotocoreStubber

    original = BotocoreStubber.__call__
    if getattr(original, "_one_at_a_time", False):
        return

    def call(self: BotocoreStubber, event_name: str, request: Any, **kwargs: Any) -> Any:
        with _MOTO_CALLS:
            return original(self, event_name, request, **kwargs)

    call._one_at_a_time = True  # type: ignore[attr-defined]
    BotocoreStubber.__call__ = call  # type: ignore[method-assign]


def _stack(env: dict[str, str], *, versioned: bool) -> Iterator[Stack]:
    _one_moto_call_at_a_time()
    with mock_aws():
        s3, dynamodb = _client("s3"), _client("dynamodb")
        s3.create_bucket(Bucket=BUCKET)
        if versioned:
            s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
        create_table(dynamodb)
        yield Stack(env=env, s3=s3, dynamodb=dynamodb)


@pytest.fixture
def stack(aws_env: dict[str, str]) -> Iterator[Stack]:
    """A fresh moto account with the table and the bucket, versioned as infra.yaml makes it.
    The handlers' cached clients are kept across tests on purpose: moto's state is reset by
    mock_aws, not by new clients."""
    yield from _stack(aws_env, versioned=True)


@pytest.fixture
def unversioned_stack(aws_env: dict[str, str]) -> Iterator[Stack]:
    """The same with a bucket that keeps no versions (not what the template makes)."""
    yield from _stack(aws_env, versioned=False)
