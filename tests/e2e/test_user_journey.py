"""End to end: the installed ``imgup`` command, as a user runs it, against the local stack."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import httpx
import pytest

from imgup.cli import IMAGE_FIELDS, UPLOAD_FIELDS
from tests.conftest import run_imgup
from tests.samples import jpeg_bytes, sha256_hex

pytestmark = pytest.mark.e2e


def _local_state(config_dir: Path) -> dict | None:
    try:
        return json.loads((config_dir / "local" / "local.json").read_text())
    except FileNotFoundError:
        return None


def _alive(pid: int) -> bool:
    """Whether the process runs: an ended one that its parent (init) has not reaped yet, a
    zombie, does not."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def test_deploy_upload_list_fetch_and_cleanup_leave_nothing_behind(
    isolated: Path, samples: dict[str, Path]
) -> None:
    deployed = run_imgup("deploy", "--local", "--json")
    assert deployed.code == 0, deployed.stderr
    info = deployed.json()
    assert info["target"] == "local" and info["stackStatus"] == "CREATE_COMPLETE"
    assert "apiKey" not in info
    assert "Next: imgup upload" in deployed.stderr
    state = _local_state(isolated)
    assert state and _alive(state["pid"])
    key_file = isolated / "deployments" / "local_us-east-1_imgup" / "api-key"
    assert key_file.stat().st_mode & 0o777 == 0o600

    files = [str(p) for p in samples.values()]
    uploaded = run_imgup("upload", *files, "--json")
    assert uploaded.code == 0, uploaded.stderr
    lines = uploaded.json()
    assert len(lines) == 4
    assert {line["fileType"] for line in lines} == set(samples)
    for line in lines:
        assert set(line) == set(UPLOAD_FIELDS) and line["duplicate"] is False
        source = samples[line["fileType"]]
        assert line["fileName"] == source.name
        assert line["fileSize"] == source.stat().st_size
        assert line["sha256"] == sha256_hex(source.read_bytes())

    listed = run_imgup("list", "--json")
    assert listed.code == 0, listed.stderr
    images = listed.json()
    assert [set(i) for i in images] == [set(IMAGE_FIELDS)] * 4
    assert {i["imageId"] for i in images} == {line["imageId"] for line in lines}
    stamps = [i["uploadedAt"] for i in images]
    assert stamps == sorted(stamps, reverse=True)
    for image in images:
        fetched = httpx.get(image["fileUrl"], timeout=10)
        assert fetched.status_code == 200
        assert fetched.content == samples[image["fileType"]].read_bytes()

    cleaned = run_imgup("cleanup", "--yes")
    assert cleaned.code == 0, cleaned.stderr
    assert info["bucket"] in cleaned.stderr
    assert not _alive(state["pid"])
    assert _local_state(isolated) is None
    assert not key_file.exists() and not list((isolated / "deployments").iterdir())
    after = run_imgup("list", "--json")
    assert after.code == 3 and after.stdout == ""
    assert "imgup deploy" in after.stderr


def test_a_client_of_the_original_api_works_unchanged_and_its_upload_is_listed(local_stack) -> None:
    data = jpeg_bytes(2048)
    headers = {"x-api-key": local_stack.api_key}
    answer = httpx.post(
        local_stack.api_url + "/upload",
        json={"fileName": "profile.jpg", "fileType": "image/jpeg", "fileSize": len(data)},
        headers=headers,
    )
    assert answer.status_code == 200
    body = answer.json()
    assert {"uploadUrl", "fileUrl", "imageId"} <= set(body)
    assert body["message"] == "Upload URL generated successfully"
    assert answer.headers["access-control-allow-origin"]
    put = httpx.put(body["uploadUrl"], content=data, headers={"Content-Type": "image/jpeg"})
    assert put.status_code == 200
    # The original client calls nothing else: the bucket's notification completes the upload.
    for _ in range(100):
        listing = httpx.get(local_stack.api_url + "/images", headers=headers).json()
        found = [i for i in listing["images"] if i["imageId"] == body["imageId"]]
        if found:
            break
        time.sleep(0.1)
    assert found, "the upload never appeared in the list"
    image = found[0]
    assert {"imageId", "fileName", "fileUrl", "fileType", "fileSize", "uploadedAt"} <= set(image)
    assert image["fileName"] == "profile.jpg" and image["fileSize"] == len(data)
    assert listing["count"] == len(listing["images"])
    assert httpx.get(image["fileUrl"]).content == data


def test_the_api_refuses_requests_without_the_right_key(local_stack) -> None:
    for headers in ({}, {"x-api-key": "not-the-key"}):
        answer = httpx.get(local_stack.api_url + "/images", headers=headers)
        assert answer.status_code == 403
        assert answer.json() == {"message": "Forbidden"}
    preflight = httpx.request("OPTIONS", local_stack.api_url + "/upload")
    assert preflight.status_code == 200
    assert "x-api-key" in preflight.headers["access-control-allow-headers"].lower()


def test_the_emulator_answers_only_the_routes_the_api_has(local_stack) -> None:
    headers = {"x-api-key": local_stack.api_key}
    for method, path in (("GET", "/nowhere"), ("PUT", "/upload"), ("POST", "/images")):
        answer = httpx.request(method, local_stack.api_url + path, headers=headers)
        assert answer.status_code == 403
        assert answer.json() == {"message": "Missing Authentication Token"}


def test_deploying_again_without_changes_succeeds_and_changes_nothing(local_stack) -> None:
    again = local_stack.imgup("deploy", "--local", "--json")
    assert again.code == 0, again.stderr
    assert "up to date" in again.stderr
    assert again.json()["apiUrl"] == local_stack.api_url


def test_status_shows_the_deployment_and_the_key_only_when_asked(local_stack) -> None:
    shown = local_stack.imgup("status", "--json")
    assert shown.code == 0
    info = shown.json()
    assert set(info) == {
        "target",
        "stackName",
        "stackStatus",
        "apiUrl",
        "bucket",
        "table",
        "region",
        "endpointUrl",
        "deployments",
    }
    assert local_stack.api_key not in shown.stdout + shown.stderr
    human = local_stack.imgup("status")
    assert human.code == 0 and local_stack.api_key not in human.stdout + human.stderr
    assert local_stack.api_url in human.stderr


def test_upload_reads_paths_from_stdin_and_reports_bad_files_without_stopping(
    local_stack, samples: dict[str, Path], tmp_path: Path
) -> None:
    fake = tmp_path / "fake.png"
    fake.write_text("just text")
    paths = [str(samples["image/png"]), str(fake), str(tmp_path / "missing.jpg"), str(tmp_path)]
    result = local_stack.imgup("upload", "-", stdin="\n".join(paths) + "\n")
    assert result.code == 6
    lines = result.stdout.splitlines()
    assert len(lines) == 1 and lines[0].endswith("\tphoto-png.png")
    assert "fake.png: is not a JPEG, PNG, GIF or WebP image" in result.stderr
    assert "missing.jpg: no such file" in result.stderr
    assert "is a directory" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_dead_local_stack_is_noticed_and_replaced(tmp_path: Path) -> None:
    env = {"IMGUP_CONFIG_DIR": str(tmp_path / "cfg")}
    started = run_imgup("local", "start", env=env)
    assert started.code == 0, started.stderr
    state = _local_state(tmp_path / "cfg")
    again = run_imgup("local", "start", env=env)
    assert "already running" in again.stderr and _local_state(tmp_path / "cfg") == state
    os.kill(state["pid"], signal.SIGKILL)
    for _ in range(50):
        if not _alive(state["pid"]):
            break
        time.sleep(0.1)
    status = run_imgup("local", "status", env=env)
    assert status.code == 3 and "not running" in status.stderr
    replaced = run_imgup("local", "start", env=env)
    assert replaced.code == 0 and "started" in replaced.stderr
    new_state = _local_state(tmp_path / "cfg")
    assert new_state["pid"] != state["pid"]
    stopped = run_imgup("local", "stop", env=env)
    assert stopped.code == 0 and not _alive(new_state["pid"])


def test_delete_removes_the_image_and_its_object_and_reports_unknown_ids(
    local_stack, samples: dict[str, Path]
) -> None:
    uploaded = local_stack.imgup("upload", str(samples["image/gif"]), str(samples["image/webp"]), "--jsonl")
    assert uploaded.code == 0, uploaded.stderr
    gif, webp = sorted(uploaded.json_lines(), key=lambda line: line["fileType"])
    unknown = "00000000-0000-4000-8000-000000000000"

    deleted = local_stack.imgup("delete", "--yes", gif["imageId"], unknown)
    assert deleted.code == 6
    assert deleted.stdout.splitlines() == [gif["imageId"]]
    assert f"{unknown}: Image not found" in deleted.stderr

    listed = {i["imageId"] for i in local_stack.imgup("list", "--all", "--json").json()}
    assert webp["imageId"] in listed and gif["imageId"] not in listed
    assert httpx.get(gif["fileUrl"]).status_code in (403, 404)  # S3 says 403 without ListBucket
    doctor = local_stack.imgup("doctor", "--json")
    assert doctor.code == 0 and doctor.json()["healthy"] is True
