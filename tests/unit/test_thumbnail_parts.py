"""The parts around the thumbnail function: its Pillow layer (as SAM packages a dependency)
and the local stack's Lambda Invoke, with fakes for pip and for the function."""

from __future__ import annotations

import io
import json
import subprocess
import zipfile
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from imgup import packaging
from imgup.local.invoke import Invoker, invocation


def fake_wheel(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    wheel = directory / "pillow-13.0.0-cp312-cp312-manylinux_2_28_x86_64.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("PIL/__init__.py", "")
        archive.writestr("PIL/_imaging.cpython-312-x86_64-linux-gnu.so", b"\x7fELF")
        archive.writestr("pillow-13.0.0.dist-info/METADATA", "Name: pillow\n")
    return wheel


def test_the_layer_is_the_manylinux_wheel_for_the_runtime_under_python(tmp_path: Path) -> None:
    calls: list[list[str]] = []

    def pip(command: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        calls.append(command)
        fake_wheel(Path(command[command.index("-d") + 1]))
        return subprocess.CompletedProcess(command, 0, "", "")

    layer = packaging.pillow_layer(tmp_path, run=pip)
    again = packaging.pillow_layer(tmp_path, run=pip)  # the wheel is kept: no second download

    assert len(calls) == 1
    command = " ".join(calls[0])
    assert "download pillow==13.0.0 --no-deps --only-binary=:all:" in command
    assert "--platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64" in command
    assert "--python-version 3.12 --implementation cp" in command
    names = zipfile.ZipFile(io.BytesIO(layer.data)).namelist()
    assert names == sorted(names)
    assert (
        "python/PIL/__init__.py" in names and "python/PIL/_imaging.cpython-312-x86_64-linux-gnu.so" in names
    )
    assert layer.sha256 == again.sha256  # deterministic: the same key, uploaded once
    assert layer.key("imgup").startswith("imgup/imgup/pillow-layer-")


def test_a_wheel_that_cannot_be_downloaded_says_what_pip_said(tmp_path: Path) -> None:
    def pip(command: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess(
            command, 1, "", "ERROR: No matching distribution found for pillow==13.0.0"
        )

    with pytest.raises(packaging.LayerError, match="No matching distribution found"):
        packaging.pillow_layer(tmp_path, run=pip)


def test_the_local_stacks_layer_is_a_small_placeholder() -> None:
    layer = packaging.placeholder_layer()
    assert zipfile.ZipFile(io.BytesIO(layer.data)).namelist() == ["python/README.txt"]
    assert layer.sha256 == packaging.placeholder_layer().sha256


class Runner:
    """A LambdaRunner stand-in: one function, that fails ``failures`` times first."""

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.events: list[Any] = []

    def function(self, region: str, name: str) -> Any:
        if name != "imgup-thumbnail":
            raise LookupError(name)
        return SimpleNamespace(name=name)

    def invoke(self, region: str, function: Any, event: Any) -> Any:
        self.events.append(event)
        if self.failures:
            self.failures -= 1
            raise RuntimeError("boom")
        return {"ok": True}


def request(name: str, payload: bytes, kind: str | None = None) -> dict[str, Any]:
    environ = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": f"/2015-03-31/functions/{name}/invocations",
        "CONTENT_LENGTH": str(len(payload)),
        "wsgi.input": io.BytesIO(payload),
        "HTTP_AUTHORIZATION": "AWS4-HMAC-SHA256 Credential=test/20261202/us-east-1/lambda/aws4_request, x",
    }
    if kind:
        environ["HTTP_X_AMZ_INVOCATION_TYPE"] = kind
    return environ


def test_an_asynchronous_invocation_is_accepted_at_once_and_retried_twice_when_it_fails() -> None:
    runner = Runner(failures=2)
    invoker = Invoker(runner, retry_delays=(0.0, 0.0))  # type: ignore[arg-type]
    status, _, body = invoker(request("imgup-thumbnail", b'{"imageId": "x"}', "Event"), "imgup-thumbnail")
    invoker.shutdown()
    assert status.startswith("202") and body == b""
    assert runner.events == [{"imageId": "x"}] * 3


def test_a_synchronous_invocation_answers_the_result_and_an_unknown_function_is_404() -> None:
    invoker = Invoker(Runner())  # type: ignore[arg-type]
    status, _, body = invoker(request("imgup-thumbnail", b"{}"), "imgup-thumbnail")
    assert status.startswith("200") and json.loads(body) == {"ok": True}
    status, _, body = invoker(request("nope", b"{}", "Event"), "nope")
    assert status.startswith("404") and b"ResourceNotFoundException" in body
    invoker.shutdown()


def test_only_posts_to_the_invoke_path_are_invocations() -> None:
    assert (
        invocation({"REQUEST_METHOD": "POST", "PATH_INFO": "/2015-03-31/functions/a%3Ab/invocations"})
        == "a:b"
    )
    assert invocation({"REQUEST_METHOD": "GET", "PATH_INFO": "/2015-03-31/functions/a/invocations"}) is None
    assert (
        invocation({"REQUEST_METHOD": "POST", "PATH_INFO": "/bucket/2015-03-31/functions/a/invocations"})
        is None
    )
