"""The local stack's process as a user meets it: started from any folder, by several imgup
commands at once, and fed requests that no honest client sends."""

from __future__ import annotations

import hashlib
import json
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote_plus, unquote, urlsplit

import httpx
import pytest

from tests.conftest import IMGUP, LocalDeployment, Run, run_imgup
from tests.e2e.test_user_journey import _local_state
from tests.isolation import isolated_env

pytestmark = pytest.mark.e2e


def run_in(folder: Path, config_dir: Path, *args: str, timeout: float = 180) -> Run:
    """The installed ``imgup`` command run with ``folder`` as its working directory."""
    completed = subprocess.run(
        [IMGUP, *args],
        cwd=folder,
        input="",
        capture_output=True,
        text=True,
        timeout=timeout,
        env=isolated_env(config_dir),
    )
    return Run(completed.returncode, completed.stdout, completed.stderr)


def test_deploy_local_starts_the_stack_from_a_folder_holding_imgup_local(tmp_path: Path) -> None:
    # The ~/.config case: imgup's own config lives in ./imgup/local of the working directory,
    # and `python -m` would put that directory first on the server's sys.path.
    home = tmp_path / "dot-config"
    (home / "imgup" / "local").mkdir(parents=True)
    (home / "imgup" / "__init__.py").write_text("raise ImportError('the folder, not the package')\n")
    config_dir = home / "imgup"
    try:
        deployed = run_in(home, config_dir, "deploy", "--local")
        assert deployed.code == 0, deployed.stderr
        assert "No module named" not in deployed.stderr
        listed = run_in(home, config_dir, "list", "--json")
        assert listed.code == 0, listed.stderr
        assert json.loads(listed.stdout) == []
    finally:
        run_in(home, config_dir, "local", "stop")


def test_the_local_stack_starts_from_a_relative_config_dir(tmp_path: Path) -> None:
    env_dir = Path("relative-config")
    (tmp_path / env_dir).mkdir()
    try:
        started = run_in(tmp_path, env_dir, "local", "start")
        assert started.code == 0, started.stderr
        state = _local_state(tmp_path / env_dir)
        assert state and state["endpointUrl"] == started.stdout.strip()
        assert run_in(tmp_path, env_dir, "local", "status").code == 0
    finally:
        run_in(tmp_path, env_dir, "local", "stop")


def servers_of(config_dir: Path) -> list[int]:
    """Pids of the local-stack processes serving ``config_dir``."""
    state_dir = str((config_dir / "local").resolve())
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"imgup.local.server" in argv and state_dir.encode() in argv:
            found.append(int(entry.name))
    return found


def run_together(config_dir: Path, *args: str, copies: int = 2) -> list[Run]:
    """``copies`` imgup commands started at once; their results once all have ended."""
    env = isolated_env(config_dir)
    processes = [
        subprocess.Popen(
            [IMGUP, *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(copies)
    ]
    runs = []
    for process in processes:
        out, err = process.communicate(timeout=240)
        runs.append(Run(process.returncode, out, err))
    return runs


def test_two_local_starts_at_once_share_one_stack(tmp_path: Path) -> None:
    config_dir = tmp_path / "cfg"
    try:
        first, second = run_together(config_dir, "local", "start")
        assert (first.code, second.code) == (0, 0), first.stderr + second.stderr
        assert first.stdout == second.stdout  # the same endpoint
        said = sorted(run.stderr.split(" at ")[0] for run in (first, second))
        assert said == ["Local stack already running", "Local stack started"]
        state = _local_state(config_dir)
        assert state and servers_of(config_dir) == [state["pid"]]
    finally:
        run_in(tmp_path, config_dir, "local", "stop")
    assert servers_of(config_dir) == []


def test_two_local_deploys_at_once_both_succeed_on_one_stack(tmp_path: Path) -> None:
    config_dir = tmp_path / "cfg"
    try:
        runs = run_together(config_dir, "deploy", "--local", "--json")
        assert [run.code for run in runs] == [0, 0], [run.stderr for run in runs]
        infos = [json.loads(run.stdout) for run in runs]
        assert infos[0]["apiUrl"] == infos[1]["apiUrl"]
        assert sum("Creating stack" in run.stderr for run in runs) == 1
        state = _local_state(config_dir)
        assert state and servers_of(config_dir) == [state["pid"]]
        listed = run_in(tmp_path, config_dir, "list", "--json")
        assert listed.code == 0, listed.stderr
    finally:
        run_in(tmp_path, config_dir, "local", "stop")


# --- requests no honest client sends ---------------------------------------------------------

SHORT_WAIT = "2"  # seconds the stack waits for body bytes that never come (default 20)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalDeployment]:
    """A deployed local stack that gives up on a silent client after SHORT_WAIT seconds."""
    config_dir = tmp_path_factory.mktemp("strict-config")
    env = {
        **isolated_env(config_dir),
        "IMGUP_LOCAL_READ_TIMEOUT": SHORT_WAIT,
        "IMGUP_LOCAL_HANDLERS": "process",  # (the default on two cores; the tests say it)
    }
    try:
        deployed = run_imgup("deploy", "--local", env=env)
        assert deployed.code == 0, deployed.stderr
        info = run_imgup("status", "--json", "--show-key", env=env).json()
        yield LocalDeployment(
            config_dir, info["apiUrl"], info["apiKey"], info["endpointUrl"], info["bucket"], info["table"]
        )
    finally:
        run_imgup("local", "stop", env=env)


@dataclass
class RawAnswer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> dict:
        return json.loads(self.body)


def raw_request(endpoint: str, head: str, body: bytes = b"", timeout: float = 60) -> RawAnswer:
    """Send exactly these bytes (a request line and headers that httpx would refuse to send)
    and read the answer until the server closes the connection."""
    url = urlsplit(endpoint)
    with socket.create_connection((url.hostname, url.port), timeout=timeout) as sock:
        sock.sendall(head.replace("\n", "\r\n").encode("latin-1") + b"\r\n" + body)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head_part, _, payload = data.partition(b"\r\n\r\n")
    lines = head_part.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return RawAnswer(int(lines[0].split()[1]), headers, payload)


def healthy(stack: LocalDeployment) -> bool:
    return httpx.get(stack.endpoint_url + "/_imgup/health", timeout=10).status_code == 200


@pytest.mark.parametrize(
    "length, body",
    [("abc", b"{}"), ("-5", b"{}"), ("1e3", b"{}"), ("2, 2", b"{}"), ("9" * 30, b"{}"), ("100", b"{}")],
    ids=["not-a-number", "negative", "exponent", "list", "huge", "longer-than-the-body"],
)
def test_the_api_answers_a_malformed_content_length_with_a_json_400(stack, length, body) -> None:
    path = urlsplit(stack.api_url).path + "/upload"
    answer = raw_request(
        stack.endpoint_url,
        f"POST {path} HTTP/1.1\nHost: 127.0.0.1\nx-api-key: {stack.api_key}\n"
        f"Content-Type: application/json\nContent-Length: {length}\n",
        body,
    )
    assert answer.status == 400, answer.body[:300]
    assert answer.headers["content-type"] == "application/json"
    assert answer.headers["x-amzn-errortype"] == "BadRequestException"
    assert answer.json()["message"]
    assert healthy(stack)


@pytest.mark.parametrize(
    "length, body, code",
    [("abc", b"xx", "BadRequest"), ("-1", b"xx", "BadRequest"), ("100", b"xx", "RequestTimeout")],
    ids=["not-a-number", "negative", "longer-than-the-body"],
)
def test_s3_answers_a_malformed_content_length_with_an_s3_error(stack, length, body, code) -> None:
    answer = raw_request(
        stack.endpoint_url,
        f"PUT /{stack.bucket}/images/x.png HTTP/1.1\nHost: 127.0.0.1\n"
        f"Authorization: {signed_for('us-east-1', 's3')}\nContent-Length: {length}\n",
        body,
    )
    assert answer.status == 400
    assert f"<Code>{code}</Code>" in answer.body.decode()
    assert healthy(stack)
    s3 = local_client(stack, "s3")
    assert s3.list_objects_v2(Bucket=stack.bucket).get("KeyCount", 0) == 0


def local_client(
    stack: LocalDeployment, service: str, region: str = "us-east-1", credentials: dict | None = None
):
    """A boto3 client for the stack, with the test's fake credentials unless others are given."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        service,
        endpoint_url=stack.endpoint_url,
        region_name=region,
        config=Config(
            retries={"max_attempts": 1},
            s3={"addressing_style": "path"},
            signature_version="s3v4" if service == "s3" else None,
        ),
        **(credentials or {}),
    )


def signed_for(region: str, service: str) -> str:
    """An Authorization header whose credential scope names ``region`` and ``service`` (the
    local stack checks no header signature: moto does not)."""
    return (
        f"AWS4-HMAC-SHA256 Credential=imgup-local/20260101/{region}/{service}/aws4_request, "
        "SignedHeaders=host;x-amz-date, Signature=00"
    )


def test_deploy_local_to_a_region_aws_does_not_have_fails_cleanly_and_creates_nothing(stack) -> None:
    attempt = stack.imgup("deploy", "--local", "--region", "nowhere-1")

    assert attempt.code in (2, 4), attempt.stderr  # a usage error, or the stack's refusal
    assert "nowhere-1" in attempt.stderr and "bug" not in attempt.stderr.lower()
    assert "Traceback" not in attempt.stderr
    assert healthy(stack)
    buckets = [b["Name"] for b in local_client(stack, "s3").list_buckets()["Buckets"]]
    assert not [name for name in buckets if "nowhere" in name]
    assert stack.imgup("list", "--json").code == 0


@pytest.mark.parametrize("service", ["sts", "s3", "cloudformation", "dynamodb", "lambda", "apigateway"])
def test_an_sdk_call_for_a_region_aws_does_not_have_gets_an_error_it_can_parse(stack, service) -> None:
    from botocore.exceptions import ClientError

    client = local_client(stack, service, region="nowhere-1")
    call = {
        "sts": lambda: client.get_caller_identity(),
        "s3": lambda: client.create_bucket(Bucket="imgup-nowhere"),
        "cloudformation": lambda: client.describe_stacks(),
        "dynamodb": lambda: client.list_tables(),
        "lambda": lambda: client.list_functions(),
        "apigateway": lambda: client.get_rest_apis(),
    }[service]

    with pytest.raises(ClientError) as raised:
        call()

    error = raised.value.response["Error"]
    assert error["Code"] in {"InvalidRegion", "AuthorizationHeaderMalformed"}
    assert "nowhere-1" in error["Message"]
    assert healthy(stack)


ODD_REGIONS = ["nowhere-1", "x", "US-EAST-1", "us-east-1x", "a" * 300, "..", "us-east-1%00", "\xff\xfe", ""]


@pytest.mark.parametrize("region", ODD_REGIONS, ids=range(len(ODD_REGIONS)))
@pytest.mark.parametrize("service", ["s3", "cloudformation", "dynamodb", "lambda"])
def test_no_region_string_makes_the_stack_answer_a_5xx_or_die(stack, region, service) -> None:
    requests = {
        "s3": f"GET /{stack.bucket}?list-type=2 HTTP/1.1\n",
        "cloudformation": "POST / HTTP/1.1\nContent-Type: application/x-www-form-urlencoded\n",
        "dynamodb": "POST / HTTP/1.1\nX-Amz-Target: DynamoDB_20120810.ListTables\n"
        "Content-Type: application/x-amz-json-1.0\n",
        "lambda": "GET /2015-03-31/functions/ HTTP/1.1\n",
    }
    body = {"cloudformation": b"Action=DescribeStacks&Version=2010-05-15", "dynamodb": b"{}"}.get(
        service, b""
    )
    head = requests[service] + (
        f"Host: 127.0.0.1\nX-Amz-Date: 20260101T000000Z\nAuthorization: {signed_for(region, service)}\n"
        f"Content-Length: {len(body)}\n"
    )

    answer = raw_request(stack.endpoint_url, head, body)

    assert answer.status < 500, answer.body[:300]
    assert not answer.body.lstrip().lower().startswith(b"<!doctype html")
    assert healthy(stack)


@pytest.mark.parametrize("region", ["nowhere-1", "x..y", "a" * 300, "%00"])
def test_the_api_emulator_answers_403_for_a_region_aws_does_not_have(stack, region) -> None:
    parts = urlsplit(stack.api_url).path.split("/")  # /_api/<region>/<api>/<stage>
    parts[2] = region
    answer = httpx.get(
        stack.endpoint_url + "/".join(parts) + "/images", headers={"x-api-key": stack.api_key}, timeout=30
    )

    assert answer.status_code == 403
    assert answer.json() == {"message": "Forbidden"}
    assert healthy(stack)


# --- the image bucket as the template makes it, and the events S3 sends --------------------


def test_the_image_bucket_is_versioned_private_and_has_cors_as_the_template_says(stack) -> None:
    s3 = local_client(stack, "s3")

    assert s3.get_bucket_versioning(Bucket=stack.bucket)["Status"] == "Enabled"
    block = s3.get_public_access_block(Bucket=stack.bucket)["PublicAccessBlockConfiguration"]
    assert all(block.values()) and len(block) == 4
    rules = s3.get_bucket_cors(Bucket=stack.bucket)["CORSRules"]
    assert rules[0]["AllowedMethods"] == ["PUT", "GET"] and rules[0]["AllowedOrigins"] == ["*"]
    key = "versioning-check/a.txt"
    first = s3.put_object(Bucket=stack.bucket, Key=key, Body=b"one")["VersionId"]
    second = s3.put_object(Bucket=stack.bucket, Key=key, Body=b"two")["VersionId"]
    versions = s3.list_object_versions(Bucket=stack.bucket, Prefix=key)["Versions"]
    assert {v["VersionId"] for v in versions} == {first, second} and first != second
    assert s3.get_object(Bucket=stack.bucket, Key=key, VersionId=first)["Body"].read() == b"one"
    for version in (first, second):
        s3.delete_object(Bucket=stack.bucket, Key=key, VersionId=version)


def delivered_events(stack: LocalDeployment, key: str, count: int) -> list[dict]:
    """The objects of the S3 events the stack delivered for ``key`` (as S3 encodes it), read
    from its log, waiting for ``count`` of them (delivery is asynchronous, as on AWS)."""
    log_file = stack.config_dir / "local" / "local.log"
    for _ in range(100):
        found = []
        for line in log_file.read_text().splitlines():
            if " s3 event " in line and f" {stack.bucket} " in line:
                event = json.loads(line.split(f" {stack.bucket} ", 1)[1])
                if event["key"] == key:
                    found.append(event)
        if len(found) >= count:
            return found
        time.sleep(0.1)
    raise AssertionError(f"{count} events for {key} were not delivered; got {found}")


def test_an_s3_event_carries_the_encoded_key_size_etag_version_and_a_growing_sequencer(stack) -> None:
    s3 = local_client(stack, "s3")
    image_id = str(uuid.uuid4())
    key = f"images/{image_id}/my photo+1 é.png"
    first = s3.put_object(Bucket=stack.bucket, Key=key, Body=b"x" * 100)
    second = s3.put_object(Bucket=stack.bucket, Key=key, Body=b"y" * 7)

    events = delivered_events(stack, f"images/{image_id}/my+photo%2B1+%C3%A9.png", 2)

    by_version = {event["versionId"]: event for event in events}
    assert set(by_version) == {first["VersionId"], second["VersionId"]}
    assert by_version[first["VersionId"]]["size"] == 100
    assert by_version[second["VersionId"]]["size"] == 7
    assert by_version[first["VersionId"]]["eTag"] == first["ETag"].strip('"')
    assert by_version[second["VersionId"]]["eTag"] == second["ETag"].strip('"')
    assert by_version[first["VersionId"]]["sequencer"] < by_version[second["VersionId"]]["sequencer"]


def test_a_copied_object_is_announced_with_its_size_etag_and_version(stack) -> None:
    s3 = local_client(stack, "s3")
    source = f"staging/{uuid.uuid4()}.png"
    target = f"images/{uuid.uuid4()}/copy.png"
    s3.put_object(Bucket=stack.bucket, Key=source, Body=b"z" * 321)

    copied = s3.copy_object(
        Bucket=stack.bucket, Key=target, CopySource={"Bucket": stack.bucket, "Key": source}
    )

    (event,) = delivered_events(stack, target, 1)
    assert event["size"] == 321
    assert event["eTag"] == copied["CopyObjectResult"]["ETag"].strip('"')
    assert event["versionId"] == copied["VersionId"]


def test_an_honest_presigned_put_is_stored_versioned_and_announced(stack) -> None:
    from imgup.aws import LOCAL_CREDENTIALS
    from tests.samples import png_bytes

    body = png_bytes(500)
    declared = {
        "fileName": "honest.png",
        "fileType": "image/png",
        "fileSize": len(body),
        "sha256": hashlib.sha256(body).hexdigest(),
    }
    grant = httpx.post(stack.api_url + "/upload", json=declared, headers={"x-api-key": stack.api_key}).json()
    key = unquote(urlsplit(grant["uploadUrl"]).path).split("/", 2)[2]

    put = httpx.put(grant["uploadUrl"], headers=grant["uploadHeaders"], content=body)

    assert put.status_code == 200, put.text
    (event,) = delivered_events(stack, quote_plus(key, safe="/"), 1)
    version = put.headers["x-amz-version-id"]
    assert event["versionId"] == version
    assert event["size"] == len(body) and event["eTag"] == put.headers["etag"].strip('"')
    signer = local_client(stack, "s3", credentials=LOCAL_CREDENTIALS)
    head = signer.head_object(Bucket=stack.bucket, Key=key, VersionId=version, ChecksumMode="ENABLED")
    assert head["ChecksumSHA256"] == put.headers["x-amz-checksum-sha256"]


def test_objects_carry_cors_headers_for_a_page_and_none_without_an_origin_as_s3_answers(stack) -> None:
    from tests.samples import png_bytes

    origin = {"origin": "http://127.0.0.1:8123"}
    body = png_bytes(200)
    declared = {"fileName": "cors.png", "fileType": "image/png", "fileSize": len(body)}
    key_header = {"x-api-key": stack.api_key}
    answers = []
    for extra in ({}, origin):
        grant = httpx.post(stack.api_url + "/upload", json=declared, headers=key_header).json()
        put = httpx.put(grant["uploadUrl"], headers={**grant["uploadHeaders"], **extra}, content=body)
        done = httpx.post(f"{stack.api_url}/images/{grant['imageId']}/complete", headers=key_header)
        assert done.status_code == 200, done.text
        got = httpx.get(done.json()["fileUrl"], headers=extra)
        assert (put.status_code, got.status_code, got.content) == (200, 200, body)
        answers.append([answer.headers.get("access-control-allow-origin") for answer in (put, got)])
    assert answers[0] == [None, None]
    assert None not in answers[1]


def test_background_work_waits_while_a_request_from_outside_is_being_served(stack) -> None:
    # An upload whose client never calls complete is made ready by its S3 event; the stack
    # delivers that event at a quiet moment, as it runs thumbnails, never between the
    # requests of an upload in progress. A request that is still sending its body holds
    # the stack busy here.
    from tests.samples import png_bytes

    body = png_bytes(300)
    declared = {"fileName": "later.png", "fileType": "image/png", "fileSize": len(body)}
    key_header = {"x-api-key": stack.api_key}
    for _ in range(200):  # the events of earlier tests on this stack are delivered first
        if health(stack)["eventsPending"] == 0:
            break
        time.sleep(0.05)
    grant = httpx.post(stack.api_url + "/upload", json=declared, headers=key_header).json()
    endpoint = urlsplit(stack.endpoint_url)
    with socket.create_connection((endpoint.hostname, endpoint.port), timeout=10) as slow:
        slow.sendall(
            f"PUT /{stack.bucket}/slow HTTP/1.1\r\nHost: {endpoint.netloc}\r\n"
            "Content-Length: 100\r\n\r\n0123456789".encode()
        )
        time.sleep(0.2)
        assert httpx.put(grant["uploadUrl"], headers=grant["uploadHeaders"], content=body).status_code == 200
        time.sleep(0.6)
        assert health(stack)["eventsPending"] >= 1  # this upload's (a thumbnail's may pass by)
        pending = httpx.get(f"{stack.api_url}/images/{grant['imageId']}", headers=key_header)
        assert pending.status_code == 404  # not ready: only ready images are shown
    for _ in range(100):  # the slow request ended (its connection closed): now it is quiet
        if health(stack)["eventsPending"] == 0:
            break
        time.sleep(0.05)
    ready = httpx.get(f"{stack.api_url}/images/{grant['imageId']}", headers=key_header)
    assert ready.status_code == 200 and ready.json()["fileSize"] == len(body)


# --- a lean stack: configuration read once per deploy, the stack's own calls in-process ----


def health(stack: LocalDeployment) -> dict:
    return httpx.get(stack.endpoint_url + "/_imgup/health", timeout=10).json()


def settled(stack: LocalDeployment) -> dict:
    """The health counts once no asynchronous invocation (a thumbnail) is left running."""
    for _ in range(200):
        counts = health(stack)
        if counts["asyncPending"] == 0:
            return counts
        time.sleep(0.05)
    raise AssertionError(f"asynchronous invocations still running after 10 s: {counts}")


def test_after_a_deploy_the_stack_builds_its_clients_ahead_of_the_first_upload(stack) -> None:
    for _ in range(200):
        if health(stack)["warmed"] >= 1:
            break
        time.sleep(0.05)
    assert health(stack)["warmed"] >= 1
    log = (stack.config_dir / "local" / "local.log").read_text()
    assert "warming the clients" not in log


def test_after_a_deploy_the_first_upload_finds_the_deployed_configuration_loaded(tmp_path) -> None:
    # A deploy ends with API Gateway changes (its key and usage plan), which made the catalog
    # forget; the stack fills it again once the changes stop, so the first upload reads none
    # of it on its way (routes, keys, the functions, the event wiring).
    from tests.samples import write_samples

    env = isolated_env(tmp_path / "config")
    try:
        assert run_imgup("deploy", "--local", env=env).code == 0
        endpoint = run_imgup("status", "--json", env=env).json()["endpointUrl"]
        counts = httpx.get(endpoint + "/_imgup/health", timeout=10).json()
        for _ in range(100):
            if counts["prefilled"] >= 1:
                break
            time.sleep(0.05)
            counts = httpx.get(endpoint + "/_imgup/health", timeout=10).json()
        assert counts["prefilled"] >= 1
        files = [str(p) for p in write_samples(tmp_path, padding=64).values()]

        uploaded = run_imgup("upload", *files, "--json", env=env)

        assert uploaded.code == 0, uploaded.stderr
        assert len(uploaded.json()) == len(files)
        after = httpx.get(endpoint + "/_imgup/health", timeout=10).json()
        assert after["catalogLoads"] == counts["catalogLoads"]
        assert after["invocations"] > counts["invocations"]  # the functions ran, from the catalog
    finally:
        run_imgup("local", "stop", env=env)


def test_deployed_configuration_is_read_once_and_a_key_change_counts_at_once(stack) -> None:
    images = stack.api_url + "/images"
    assert httpx.get(images, headers={"x-api-key": stack.api_key}).status_code == 200
    loads = health(stack)["catalogLoads"]
    for _ in range(10):
        assert httpx.get(images, headers={"x-api-key": stack.api_key}).status_code == 200
    assert health(stack)["catalogLoads"] == loads  # nothing re-read per request

    apigw = local_client(stack, "apigateway")
    plan = next(p for p in apigw.get_usage_plans()["items"] if p["name"].endswith("-plan"))
    key = apigw.create_api_key(name="second-key", enabled=True)
    apigw.create_usage_plan_key(usagePlanId=plan["id"], keyId=key["id"], keyType="API_KEY")
    try:
        assert httpx.get(images, headers={"x-api-key": key["value"]}).status_code == 200
    finally:
        apigw.delete_api_key(apiKey=key["id"])
    assert httpx.get(images, headers={"x-api-key": key["value"]}).status_code == 403
    assert httpx.get(images, headers={"x-api-key": stack.api_key}).status_code == 200


def test_an_upload_costs_at_most_three_http_requests_per_file_and_the_rest_runs_in_process(
    stack, tmp_path
) -> None:
    from tests.samples import write_samples

    files = [str(p) for p in write_samples(tmp_path, padding=64).values()]
    stack.imgup("upload", *files[:1])  # the first upload of a stack creates its clients
    before = settled(stack)  # and asks for a thumbnail, in the background

    uploaded = stack.imgup("upload", *files, "--json")

    assert uploaded.code == 0, uploaded.stderr
    for _ in range(100):  # the S3 events are delivered after the PUTs are answered
        after = health(stack)
        if after["events"] - before["events"] >= len(files):
            break
        time.sleep(0.1)
    after = settled(stack)
    # the client's own: presign (maybe batched), the PUT, complete (maybe batched); no more
    assert len(files) <= after["requests"]["http"] - before["requests"]["http"] <= 3 * len(files)
    assert after["requests"]["inProcess"] - before["requests"]["inProcess"] >= 3 * len(files)
    assert after["catalogLoads"] == before["catalogLoads"]


# --- the handlers' own process ----------------------------------------------------------------


def cpu_used(pid: int) -> tuple[int, int]:
    """The process's CPU in clock ticks (utime + stime, threads that ended included) and in
    nanoseconds (its live threads' schedstat): a few uploads' work in the handlers' process
    can stay within one 10 ms tick."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    nanoseconds = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            nanoseconds += int((task / "schedstat").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            pass  # the thread ended meanwhile
    return int(fields[11]) + int(fields[12]), nanoseconds


def parent_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_the_handlers_run_in_a_child_process_and_a_killed_one_is_replaced(stack, tmp_path) -> None:
    from tests.samples import write_samples

    files = [str(p) for p in write_samples(tmp_path, padding=4096).values()]
    stack.imgup("upload", files[0])  # the handlers' process has started by now
    counts = settled(stack)
    child = counts["handlersPid"]
    assert child is not None and parent_of(child) == counts["pid"]
    ticks, nanoseconds = cpu_used(child)
    uploaded = stack.imgup("upload", *files[1:], "--json")
    assert uploaded.code == 0, uploaded.stderr
    ticks_after, nanoseconds_after = cpu_used(child)
    assert ticks_after > ticks or nanoseconds_after > nanoseconds  # the handlers' work was done there

    subprocess.run(["kill", "-9", str(child)], check=True)
    for _ in range(100):
        if not alive(child):
            break
        time.sleep(0.05)
    listed = stack.imgup("list", "--all", "--json")
    assert listed.code == 0, listed.stderr
    assert {image["fileName"] for image in listed.json()} >= {Path(f).name for f in files}
    replaced = health(stack)["handlersPid"]
    assert replaced not in (None, child) and parent_of(replaced) == counts["pid"]
    assert "handlers' process ended" in (stack.config_dir / "local" / "local.log").read_text()


@pytest.mark.parametrize("where", ["process", "inprocess"])
def test_uploads_work_with_the_handlers_in_either_place_and_a_stop_leaves_no_process(tmp_path, where) -> None:
    from tests.samples import write_samples

    config_dir = tmp_path / "config"
    env = {**isolated_env(config_dir), "IMGUP_LOCAL_HANDLERS": where}
    files = [str(p) for p in write_samples(tmp_path, padding=4096).values()]
    try:
        assert run_imgup("deploy", "--local", env=env).code == 0
        uploaded = run_imgup("upload", *files, "--json", env=env)
        assert uploaded.code == 0, uploaded.stderr
        assert len(uploaded.json()) == len(files)
        listed = run_imgup("list", "--all", "--json", env=env)
        assert sorted(i["fileName"] for i in listed.json()) == sorted(Path(f).name for f in files)
        endpoint = run_imgup("status", "--json", env=env).json()["endpointUrl"]
        counts = httpx.get(endpoint + "/_imgup/health", timeout=10).json()
        assert (counts["handlersPid"] is not None) is (where == "process")
        assert counts["invocations"] >= 2
    finally:
        run_imgup("cleanup", "--yes", env=env)
        run_imgup("local", "stop", env=env)
    for pid in (counts["pid"], counts["handlersPid"]):
        if pid is not None:
            for _ in range(100):
                if not alive(pid):
                    break
                time.sleep(0.05)
            assert not alive(pid)
