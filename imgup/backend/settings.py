"""The handlers' settings, read from one environment mapping, and the AWS clients they imply.

In Lambda the mapping is ``os.environ``; the local stack passes the function's environment as
CloudFormation gave it, plus region, credentials and ``AWS_ENDPOINT_URL``. Clients are built
from that mapping alone (the endpoint is passed explicitly, never picked up from the process
environment) and cached per distinct connection settings, so a warm Lambda reuses them.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from . import rules, storage

__all__ = ["ConfigError", "Connection", "Settings", "clear_client_cache", "clients", "share_secret"]


class ConfigError(RuntimeError):
    """The function's environment is missing a setting or holds an unusable one."""


def _integer(environ: Mapping[str, str], name: str, default: int, *, low: int, high: int) -> int:
    raw = environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, not {raw!r}") from None
    if not low <= value <= high:
        raise ConfigError(f"{name} must be from {low} to {high}, not {value}")
    return value


def _required(environ: Mapping[str, str], name: str) -> str:
    value = (environ.get(name) or "").strip()
    if not value:
        raise ConfigError(f"{name} is not set")
    return value


@dataclass(frozen=True)
class Connection:
    """Where and as whom to reach AWS; the key of the client cache."""

    region: str
    endpoint_url: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = None
    session_token: str | None = None

    def __repr__(self) -> str:  # never show credentials, even in a traceback
        return f"Connection(region={self.region!r}, endpoint_url={self.endpoint_url!r})"

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> Connection:
        return cls(
            region=(environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION") or "us-east-1").strip(),
            endpoint_url=(environ.get("AWS_ENDPOINT_URL") or "").strip() or None,
            access_key_id=environ.get("AWS_ACCESS_KEY_ID") or None,
            secret_access_key=environ.get("AWS_SECRET_ACCESS_KEY") or None,
            session_token=environ.get("AWS_SESSION_TOKEN") or None,
        )


@dataclass(frozen=True)
class Settings:
    table_name: str
    bucket_name: str
    max_upload_bytes: int = rules.DEFAULT_MAX_UPLOAD_BYTES
    url_expiry_seconds: int = 300
    download_url_expiry_seconds: int = 3600
    pending_ttl_seconds: int = 86400
    allowed_origin: str = "*"
    share_secret_id: str | None = None
    connection: Connection = Connection(region="us-east-1")
    thumbnail_function: str | None = None
    """The ThumbnailFunction to invoke when an image becomes ready (CompleteFunction only)."""

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> Settings:
        """Settings from a function environment (docs/internals.md, "Function environment")."""
        week = storage.MAX_PRESIGN_SECONDS
        return cls(
            table_name=_required(environ, "TABLE_NAME"),
            bucket_name=_required(environ, "BUCKET_NAME"),
            max_upload_bytes=_integer(
                environ,
                "MAX_UPLOAD_BYTES",
                rules.DEFAULT_MAX_UPLOAD_BYTES,
                low=1,
                high=5 * 1024**3,
            ),
            url_expiry_seconds=_integer(environ, "URL_EXPIRY_SECONDS", 300, low=1, high=week),
            download_url_expiry_seconds=_integer(
                environ, "DOWNLOAD_URL_EXPIRY_SECONDS", 3600, low=1, high=week
            ),
            pending_ttl_seconds=_integer(environ, "PENDING_TTL_SECONDS", 86400, low=60, high=366 * 86400),
            allowed_origin=(environ.get("ALLOWED_ORIGIN") or "*").strip() or "*",
            share_secret_id=(environ.get("SHARE_SECRET_ID") or "").strip() or None,
            connection=Connection.from_environ(environ),
            thumbnail_function=(environ.get("THUMBNAIL_FUNCTION") or "").strip() or None,
        )


@dataclass(frozen=True)
class Clients:
    s3: Any
    dynamodb: Any
    session: Any = None


def _session(connection: Connection) -> Any:
    import boto3  # imported here so that the pure parts of the backend load without it

    return boto3.session.Session(
        aws_access_key_id=connection.access_key_id,
        aws_secret_access_key=connection.secret_access_key,
        aws_session_token=connection.session_token,
        region_name=connection.region,
    )


@functools.lru_cache(maxsize=16)
def clients(connection: Connection) -> Clients:
    """The S3 and DynamoDB clients for a connection, built once and reused."""
    session = _session(connection)
    return Clients(
        s3=storage.make_s3_client(session, endpoint_url=connection.endpoint_url),
        dynamodb=storage.make_dynamodb_client(session, endpoint_url=connection.endpoint_url),
        session=session,
    )


@functools.lru_cache(maxsize=16)
def share_secret(connection: Connection, secret_id: str) -> bytes:
    """The share secret's value (Secrets Manager), read once per warm function and kept.

    A failed read raises (and is not cached): the route answers 500 and the next request
    tries again. Rotating the secret ends every link made with the old value.
    """
    client = clients(connection).session.client(
        "secretsmanager", endpoint_url=connection.endpoint_url or None
    )
    value = client.get_secret_value(SecretId=secret_id).get("SecretString") or ""
    if len(value) < 32:
        raise ConfigError(f"the share secret {secret_id} holds fewer than 32 characters")
    return value.encode("utf-8")


@functools.lru_cache(maxsize=16)
def lambda_client(connection: Connection) -> Any:
    """The Lambda client for a connection (to invoke another function), built once and
    reused: building a client costs tens of milliseconds, far more than an invocation."""
    from botocore.config import Config

    return clients(connection).session.client(
        "lambda",
        endpoint_url=connection.endpoint_url or None,
        config=Config(retries={"mode": "standard", "max_attempts": 3}, connect_timeout=5, read_timeout=10),
    )


def clear_client_cache() -> None:
    """Forget every cached client (tests that start a fresh mock want fresh clients)."""
    clients.cache_clear()
    lambda_client.cache_clear()
    share_secret.cache_clear()
