"""The local stack's in-process boto3 calls: labelled with their scope, not signed."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore import auth
from botocore.awsrequest import AWSResponse
from botocore.config import Config

from imgup.local import inprocess

LOCAL = "http://127.0.0.1:1"
ELSEWHERE = "http://127.0.0.1:2"
ZEROS = "0" * 64


class _Answer:
    def stream(self, amt: int = 65536, decode_content: bool | None = None) -> Any:
        yield b""


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    for version in ("v4", "s3v4"):
        monkeypatch.setitem(auth.AUTH_TYPE_MAPS, version, auth.AUTH_TYPE_MAPS[version])
    inprocess._skip_signing_for(LOCAL)
    captured: list[Any] = []

    def capture(request: Any, **kwargs: Any) -> AWSResponse:
        captured.append(request)
        return AWSResponse(request.url, 200, {}, _Answer())

    monkeypatch.setattr(_Sent, "hook", staticmethod(capture))
    return captured


class _Sent:
    hook: Any = None


def client(service: str, endpoint: str) -> Any:
    made = boto3.session.Session(
        aws_access_key_id="AKIDLOCAL", aws_secret_access_key="secret", region_name="eu-west-1"
    ).client(
        service, endpoint_url=endpoint, config=Config(signature_version="s3v4" if service == "s3" else None)
    )
    made.meta.events.register("before-send", _Sent.hook)
    return made


def authorization(sent: list[Any], service: str, endpoint: str) -> str:
    """The Authorization header of one call of ``service`` to ``endpoint``."""
    call = client(service, endpoint)
    if service == "s3":
        call.put_object(Bucket="b", Key="k", Body=b"data")
    else:
        call.list_tables()
    header = sent[-1].headers["Authorization"]
    return header.decode() if isinstance(header, bytes) else header


@pytest.mark.parametrize("service", ["s3", "dynamodb"])
def test_a_request_to_the_stack_itself_carries_its_scope_and_no_signature(sent, service: str) -> None:
    header = authorization(sent, service, LOCAL)
    assert "Credential=AKIDLOCAL/" in header and f"/eu-west-1/{service}/aws4_request" in header
    assert header.endswith(f"Signature={ZEROS}")
    assert len(sent[-1].headers["X-Amz-Date"]) == len("20261202T010203Z")


@pytest.mark.parametrize("service", ["s3", "dynamodb"])
def test_a_request_elsewhere_is_signed_as_botocore_signs_it(sent, service: str) -> None:
    signature = authorization(sent, service, ELSEWHERE).rpartition("Signature=")[2]
    assert len(signature) == 64 and signature != ZEROS


def test_a_presigned_url_of_the_stack_is_signed_for_real(sent) -> None:
    url = client("s3", LOCAL).generate_presigned_url(
        "put_object", Params={"Bucket": "b", "Key": "k"}, ExpiresIn=60
    )
    signature = url.rpartition("X-Amz-Signature=")[2]
    assert len(signature) == 64 and signature != ZEROS
