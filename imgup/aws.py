"""The boto3 boundary: sessions for AWS or the local stack, and error translation.

Everything that talks to AWS gets an ``AwsTarget`` and wraps its calls in
``translate_errors``, so botocore's exceptions never reach a command: they become
``AwsError`` with a message that says what to do.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from .errors import AwsError, UsageError

# The local stack accepts any credentials; fixed ones keep real ones out of its reach.
LOCAL_CREDENTIALS = {"aws_access_key_id": "imgup-local", "aws_secret_access_key": "imgup-local"}


@dataclass
class AwsTarget:
    """Where stack operations go: a boto3 session, plus the local stack's endpoint if any."""

    session: Any
    endpoint_url: str | None = None
    _clients: dict[str, Any] = field(default_factory=dict, repr=False)
    _account: str | None = field(default=None, repr=False)

    @property
    def region(self) -> str:
        return self.session.region_name

    def client(self, service: str) -> Any:
        if service not in self._clients:
            from botocore.config import Config

            config = Config(
                signature_version="s3v4" if service == "s3" else None,
                s3={"addressing_style": "path"} if self.endpoint_url else None,
                retries={"mode": "standard", "max_attempts": 5},
            )
            self._clients[service] = self.session.client(
                service, endpoint_url=self.endpoint_url, config=config
            )
        return self._clients[service]

    def account_id(self) -> str:
        if self._account is None:
            with translate_errors("Looking up the AWS account"):
                self._account = str(self.client("sts").get_caller_identity()["Account"])
        return self._account


def aws_target(profile: str | None, region: str | None) -> AwsTarget:
    import boto3
    import botocore.exceptions

    # boto3 reads AWS_DEFAULT_REGION but not AWS_REGION, which the AWS CLI v2 and the other
    # SDKs read first; so do we.
    region = region or os.environ.get("AWS_REGION") or None
    try:
        session = boto3.session.Session(profile_name=profile, region_name=region)
    except botocore.exceptions.ProfileNotFound:
        raise UsageError(
            f"The AWS profile {profile!r} does not exist.",
            "Check `aws configure list-profiles`, or pass another --profile.",
        ) from None
    if not session.region_name:
        raise UsageError(
            "No AWS region is set.",
            "Pass --region, set AWS_REGION, or set a region in your AWS profile.",
        )
    return AwsTarget(session)


# The services the stack in infra.yaml uses, plus STS: a region must offer them all (moto, too,
# knows a region per service, and fails on one it does not know).
STACK_SERVICES = (
    "cloudformation",
    "s3",
    "dynamodb",
    "lambda",
    "apigateway",
    "sts",
    "kms",
    "sqs",
    "sns",
    "cloudwatch",
    "logs",
)


def check_region(region: str, source: str) -> None:
    """A UsageError unless botocore knows ``region`` for every service of the stack."""
    import boto3

    session = boto3.session.Session()
    known: set[str] | None = None
    for service in STACK_SERVICES:
        regions = {
            r for p in session.get_available_partitions() for r in session.get_available_regions(service, p)
        }
        known = regions if known is None else known & regions
    if region not in (known or set()):
        raise UsageError(
            f"{source} sets the region to {region!r}, which is not a region imgup can deploy to.",
            "Give a region such as us-east-1 or eu-west-1. A region newer than your boto3 needs "
            "`pip install -U boto3`.",
        )


def region_source() -> str:
    """Where ``aws_target`` found the region when imgup's settings gave none."""
    return "AWS_REGION" if os.environ.get("AWS_REGION") else "AWS_DEFAULT_REGION or your AWS profile"


def local_target(endpoint_url: str, region: str | None = None) -> AwsTarget:
    import boto3

    session = boto3.session.Session(region_name=region or "us-east-1", **LOCAL_CREDENTIALS)
    return AwsTarget(session, endpoint_url=endpoint_url)


def error_code(exc: BaseException) -> str:
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


@contextlib.contextmanager
def translate_errors(action: str) -> Iterator[None]:
    """Turn botocore errors raised inside the block into AwsError naming ``action``."""
    import botocore.exceptions as bx

    try:
        yield
    except bx.NoCredentialsError:
        raise AwsError(
            f"{action} failed: no AWS credentials were found.",
            "Set AWS_PROFILE (or pass --profile), or AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY; or try everything locally with `imgup deploy --local`.",
        ) from None
    except (bx.EndpointConnectionError, bx.ConnectionClosedError, bx.ReadTimeoutError) as exc:
        raise AwsError(
            f"{action} failed: cannot reach {getattr(exc, 'kwargs', {}).get('endpoint_url', 'AWS')}.",
            "Check your network; for the local stack run `imgup local status`.",
        ) from None
    except bx.ClientError as exc:
        error = exc.response.get("Error", {})
        code = error.get("Code", "Error")
        message = error.get("Message", str(exc))
        hint = None
        if code in {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation"}:
            hint = "Your AWS identity lacks a permission imgup needs; see README.md (Deploying to AWS)."
        elif code in {"ExpiredToken", "ExpiredTokenException", "InvalidClientTokenId"}:
            hint = "Your AWS credentials are expired or invalid; refresh them and try again."
        raise AwsError(f"{action} failed: {code}: {message}", hint) from None
    except bx.BotoCoreError as exc:
        raise AwsError(f"{action} failed: {exc}") from None
