"""Strict-S3 conformance tier: every test runs against two S3s that enforce presigned-URL
rules the way AWS S3 does, with the same expectations:

- ``imgup-local``: imgup's own local stack, which checks presigned PUTs itself (moto does
  not); always available;
- ``localstack``: a real LocalStack S3 (host mode, no Docker) with signature validation on.
  LocalStack lives in its own Python 3.13 virtual environment, made by `.ci/localstack.sh
  install` at `.tools/localstack-venv` (or named by IMGUP_LOCALSTACK_PYTHON). Without it
  that half of the tier is skipped, and the terminal summary says so; with
  IMGUP_REQUIRE_STRICT_S3=1 (CI) a missing LocalStack fails the tier instead.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests import tiers

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_PYTHON = REPO_ROOT / ".tools" / "localstack-venv" / "bin" / "python"
INSTALL_HINT = "run .ci/localstack.sh install"
SKIP_REASON = f"strict-S3 tier skipped: {INSTALL_HINT}"

READY_TIMEOUT_S = 90.0
STOP_GRACE_S = 10.0
CLOSED_PORT_PROXY = "http://127.0.0.1:9"  # nothing listens there: every download fails fast

ACCESS_KEY = "test"
SECRET_KEY = "test"
REGION = "us-east-1"
TARGETS = ["imgup-local", "localstack"]

# Set by the `localstack` fixture, reported by pytest_terminal_summary.
_tier_status = tiers.section("strict-S3 tier")


@dataclass(frozen=True)
class LocalStack:
    endpoint: str
    pid: int
    workdir: Path
    log_path: Path
    start_seconds: float
    version: str


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "strict_s3: strict-S3 conformance tier, runs against LocalStack S3 with signature "
        "validation (skipped unless .ci/localstack.sh install has run)",
    )


def _require_strict() -> bool:
    return os.environ.get("IMGUP_REQUIRE_STRICT_S3", "").strip().lower() in {
        "1",
        "true",
        "yes",
    }


def _find_python() -> tuple[Path | None, str]:
    """The LocalStack interpreter, or None and why it is missing."""
    named = os.environ.get("IMGUP_LOCALSTACK_PYTHON")
    candidate = Path(named) if named else DEFAULT_PYTHON
    if candidate.is_file() and os.access(candidate, os.X_OK):
        return candidate, ""
    origin = "IMGUP_LOCALSTACK_PYTHON" if named else "LocalStack's interpreter"
    return None, f"{origin} {candidate} not found"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _localstack_env(port: int, workdir: Path) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        # Nothing of the test process's Python, AWS or LocalStack set-up leaks in.
        if not key.startswith(("AWS_", "PYTHON", "LOCALSTACK_", "VIRTUAL_ENV"))
        and key.lower() not in {"http_proxy", "https_proxy", "all_proxy", "no_proxy"}
    }
    fs_root = workdir / "fs"
    tmp = workdir / "tmp"
    fs_root.mkdir()
    tmp.mkdir()
    env.update(
        S3_SKIP_SIGNATURE_VALIDATION="0",
        OVERRIDE_IN_DOCKER="0",
        GATEWAY_SERVER="hypercorn",
        GATEWAY_LISTEN=f"127.0.0.1:{port}",
        DISABLE_EVENTS="1",
        DNS_ADDRESS="0",  # no DNS server of its own (it would want port 53)
        PERSISTENCE="0",
        FILESYSTEM_ROOT=str(fs_root),
        TMPDIR=str(tmp),
        HTTP_PROXY=CLOSED_PORT_PROXY,
        HTTPS_PROXY=CLOSED_PORT_PROXY,
        http_proxy=CLOSED_PORT_PROXY,
        https_proxy=CLOSED_PORT_PROXY,
        NO_PROXY="127.0.0.1,localhost",
        no_proxy="127.0.0.1,localhost",
    )
    return env


def _log_tail(log_path: Path, lines: int = 60) -> str:
    try:
        text = log_path.read_text(errors="replace")
    except OSError as exc:
        return f"(no log: {exc})"
    return "\n".join(text.splitlines()[-lines:])


def _stop(proc: subprocess.Popen) -> str:
    """SIGTERM, wait up to STOP_GRACE_S, then SIGKILL its process group. Says what happened."""
    if proc.poll() is not None:
        outcome = f"had already exited ({proc.returncode})"
    else:
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=STOP_GRACE_S)
            outcome = f"stopped by SIGTERM in {time.monotonic() - started:.1f} s"
        except subprocess.TimeoutExpired:
            outcome = f"ignored SIGTERM for {STOP_GRACE_S:.0f} s, killed"
    # The process leads its own group (start_new_session): take any helper it left along.
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.wait(timeout=STOP_GRACE_S)
    except subprocess.TimeoutExpired:
        outcome += "; still not reaped after SIGKILL"
    return outcome


def _wait_ready(proc: subprocess.Popen, endpoint: str, deadline: float) -> tuple[bool, str]:
    """Poll /_localstack/health until S3 is up. (ready, version or why not)."""
    last = "no answer yet"
    with httpx.Client(trust_env=False, timeout=2.0) as client:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                return (
                    False,
                    f"LocalStack exited with code {proc.returncode} before it was ready",
                )
            try:
                response = client.get(f"{endpoint}/_localstack/health")
                body = response.json()
                s3_state = body.get("services", {}).get("s3")
                if response.status_code == 200 and s3_state in {"available", "running"}:
                    return True, str(body.get("version", "?"))
                last = f"HTTP {response.status_code}, s3={s3_state!r}"
            except (httpx.HTTPError, json.JSONDecodeError, AttributeError) as exc:
                last = f"{type(exc).__name__}: {exc}"
            time.sleep(0.25)
    return (
        False,
        f"S3 not ready within {READY_TIMEOUT_S:.0f} s (last health check: {last})",
    )


@pytest.fixture(scope="session")
def localstack(tmp_path_factory: pytest.TempPathFactory):
    """A running LocalStack with strict S3 on 127.0.0.1; stopped at the end of the session."""
    python, missing = _find_python()
    if python is None:
        if _require_strict():
            message = f"strict-S3 tier FAILED: IMGUP_REQUIRE_STRICT_S3=1 but {missing}; {INSTALL_HINT}"
            _tier_status.append(message)
            pytest.fail(message, pytrace=False)
        _tier_status.append(
            f"{SKIP_REASON} ({missing}; set IMGUP_REQUIRE_STRICT_S3=1 to make this a failure)"
        )
        pytest.skip(SKIP_REASON)

    failure = ""
    for attempt in range(3):  # a fresh port if another process took ours in between
        workdir = tmp_path_factory.mktemp("localstack")
        log_path = workdir / "localstack.log"
        port = _free_port()
        endpoint = f"http://127.0.0.1:{port}"
        started = time.monotonic()
        with log_path.open("wb") as log:
            proc = subprocess.Popen(
                [str(python), "-m", "localstack.runtime.main"],
                cwd=workdir,
                env=_localstack_env(port, workdir),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        ready, detail = _wait_ready(proc, endpoint, started + READY_TIMEOUT_S)
        if ready:
            break
        stopped = _stop(proc)
        tail = _log_tail(log_path)
        failure = f"LocalStack did not start ({detail}; {stopped}).\n--- last lines of {log_path} ---\n{tail}"
        if "address already in use" not in tail.lower() or attempt == 2:
            _tier_status.append(
                f"strict-S3 tier FAILED: LocalStack did not start ({detail}); log: {log_path}"
            )
            pytest.fail(failure, pytrace=False)
    else:  # pragma: no cover - the loop either breaks or fails
        pytest.fail(failure, pytrace=False)

    info = LocalStack(
        endpoint=endpoint,
        pid=proc.pid,
        workdir=workdir,
        log_path=log_path,
        start_seconds=time.monotonic() - started,
        version=detail,
    )
    status = (
        f"strict-S3 tier: LocalStack {info.version} at {endpoint} (pid {proc.pid}), "
        f"S3 ready in {info.start_seconds:.1f} s"
    )
    _tier_status.append(status)
    try:
        yield info
    finally:
        _tier_status[_tier_status.index(status)] = f"{status}; {_stop(proc)}"


@dataclass(frozen=True)
class StrictS3:
    """An S3 endpoint that enforces presigned-URL rules, and credentials it knows."""

    name: str
    endpoint: str
    access_key: str
    secret_key: str


@pytest.fixture(scope="session")
def imgup_local(tmp_path_factory: pytest.TempPathFactory):
    """imgup's local stack (its own process, as `imgup local start` runs it)."""
    from imgup.aws import LOCAL_CREDENTIALS
    from imgup.local import control

    state_dir = tmp_path_factory.mktemp("imgup-local")
    found, _ = control.start(state_dir)
    status = f"strict-S3 tier: imgup's local stack at {found.endpoint_url} (pid {found.pid})"
    _tier_status.append(status)
    try:
        yield StrictS3(
            "imgup-local",
            found.endpoint_url,
            LOCAL_CREDENTIALS["aws_access_key_id"],
            LOCAL_CREDENTIALS["aws_secret_access_key"],
        )
    finally:
        control.stop(state_dir)


@pytest.fixture(scope="session", params=TARGETS)
def strict_s3(request: pytest.FixtureRequest) -> StrictS3:
    if request.param == "localstack":
        info = request.getfixturevalue("localstack")
        return StrictS3("localstack", info.endpoint, ACCESS_KEY, SECRET_KEY)
    return request.getfixturevalue("imgup_local")


@pytest.fixture(scope="session")
def s3(strict_s3: StrictS3):
    """A boto3 S3 client for the strict S3, configured the way the backend's presigning needs."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=strict_s3.endpoint,
        region_name=REGION,
        aws_access_key_id=strict_s3.access_key,
        aws_secret_access_key=strict_s3.secret_key,
        config=Config(
            signature_version="s3v4",
            s3={"addressing_style": "path"},
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            retries={"max_attempts": 1},
        ),
    )


@pytest.fixture()
def http(strict_s3: StrictS3):
    """A plain HTTP client that only ever talks to the strict S3 on 127.0.0.1."""

    def only_local(request: httpx.Request) -> None:
        if request.url.host != "127.0.0.1":
            raise AssertionError(f"strict-S3 tests talk to 127.0.0.1 only, not {request.url}")

    with httpx.Client(trust_env=False, timeout=10.0, event_hooks={"request": [only_local]}) as client:
        yield client


@pytest.fixture(scope="module")
def bucket(s3) -> str:
    name = f"imgup-strict-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    return name


@pytest.fixture()
def key() -> str:
    return f"images/{uuid.uuid4()}/photo.png"
