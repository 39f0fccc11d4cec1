"""End to end: several deployments remembered side by side, selected by stack name, region
and target, on every command, with the installed ``imgup`` against the local stack."""

from __future__ import annotations

import shutil
import stat
from pathlib import Path

import pytest

from tests.conftest import run_imgup

pytestmark = pytest.mark.e2e


def _local_stack_runs() -> bool:
    return run_imgup("local", "status").code == 0


def _upload(path: Path, *options: str) -> str:
    result = run_imgup("upload", str(path), "--jsonl", *options)
    assert result.code == 0, result.stderr
    [line] = result.json_lines()
    return line["imageId"]


def _listed(*options: str, env: dict | None = None) -> list[str]:
    result = run_imgup("list", "--json", *options, env=env)
    assert result.code == 0, result.stderr
    return [image["imageId"] for image in result.json()]


def test_a_deployment_in_another_region_is_remembered_beside_the_first_and_cleaned_up_alone(
    isolated: Path, samples: dict[str, Path]
) -> None:
    try:
        assert run_imgup("deploy", "--local").code == 0
        east = _upload(samples["image/png"])
        west_deploy = run_imgup("deploy", "--local", "--region", "us-west-2")
        assert west_deploy.code == 0, west_deploy.stderr
        assert "Next: imgup upload --region us-west-2 photo.jpg" in west_deploy.stderr
        west = _upload(samples["image/gif"], "--region", "us-west-2")

        # Two deployments named imgup: nothing chooses between them, so say how to choose.
        ambiguous = run_imgup("list")
        assert ambiguous.code == 2 and ambiguous.stdout == ""
        assert "imgup (local, us-east-1), imgup (local, us-west-2)" in ambiguous.stderr
        assert "--region us-east-1" in ambiguous.stderr and "--region us-west-2" in ambiguous.stderr

        # The first gallery is still reachable, and each is selected by flag or environment.
        assert _listed("--region", "us-east-1") == [east]
        assert _listed(env={"IMGUP_REGION": "us-west-2"}) == [west]
        assert _listed("--region", "us-west-2", "--local") == [west]

        status = run_imgup("status", "--json")
        assert status.code == 2
        assert [(d["region"], d["selected"], d["selectWith"]) for d in status.json()["deployments"]] == [
            ("us-east-1", False, ["--region", "us-east-1"]),
            ("us-west-2", False, ["--region", "us-west-2"]),
        ]
        selected = run_imgup("status", "--json", "--region", "us-west-2")
        assert selected.code == 0, selected.stderr
        info = selected.json()
        assert info["region"] == "us-west-2" and info["bucket"].endswith("-us-west-2")
        assert [d["selected"] for d in info["deployments"]] == [False, True]
        human = run_imgup("status", "--region", "us-west-2")
        assert "imgup remembers 2 deployments" in human.stderr and "* imgup  local  us-west-2" in human.stderr

        # cleanup removes the selected one only, and keeps the local stack for the other.
        cleaned = run_imgup("cleanup", "--yes", "--region", "us-east-1")
        assert cleaned.code == 0, cleaned.stderr
        assert "keeps running for imgup (local, us-west-2)" in cleaned.stderr
        assert _local_stack_runs()
        assert _listed() == [west]  # the only one left is selected without options
        gone = run_imgup("list", "--region", "us-east-1")
        assert gone.code == 3 and "imgup (local, us-west-2)" in gone.stderr

        last = run_imgup("cleanup", "--yes")
        assert last.code == 0, last.stderr
        assert "Stopped the local stack" in last.stderr
        assert not _local_stack_runs()
        assert run_imgup("status").code == 3
    finally:
        run_imgup("local", "stop")


def test_the_stack_name_setting_selects_the_deployment_of_every_command(
    isolated: Path, samples: dict[str, Path]
) -> None:
    gallery = {"IMGUP_STACK_NAME": "gallery"}
    try:
        assert run_imgup("deploy", "--local", "--stack-name", "gallery").code == 0
        assert run_imgup("deploy", "--local").code == 0
        image = _upload(samples["image/jpeg"], "--stack-name", "gallery")

        assert _listed() == []  # no selection: the default stack name, imgup
        assert _listed(env=gallery) == [image]
        assert _listed("--stack-name", "gallery") == [image]
        status = run_imgup("status", "--json", env=gallery)
        assert status.code == 0 and status.json()["stackName"] == "gallery"
        doctor = run_imgup("doctor", "--json", "--stack-name", "gallery")
        assert doctor.code == 0 and doctor.json()["records"] == {"ready": 1}
        deleted = run_imgup("delete", "--yes", image, env=gallery)
        assert deleted.code == 0 and deleted.stdout.split() == [image]

        other = run_imgup("list", env={"IMGUP_STACK_NAME": "other"})
        assert other.code == 3 and other.stdout == ""
        assert "IMGUP_STACK_NAME=other" in other.stderr
        assert "gallery (local, us-east-1), imgup (local, us-east-1)" in other.stderr

        cleaned = run_imgup("cleanup", "--yes", env=gallery)
        assert cleaned.code == 0 and "keeps running for imgup (local, us-east-1)" in cleaned.stderr
        status = run_imgup("status", "--json")
        assert status.code == 0 and [d["stackName"] for d in status.json()["deployments"]] == ["imgup"]
    finally:
        run_imgup("cleanup", "--yes")
        run_imgup("local", "stop")


def test_the_single_deployment_of_an_earlier_version_keeps_working(
    isolated: Path, samples: dict[str, Path]
) -> None:
    try:
        assert run_imgup("deploy", "--local").code == 0
        image = _upload(samples["image/webp"])
        # What an earlier imgup left: deployment.json and api-key at the top of the config dir.
        folder = isolated / "deployments" / "local_us-east-1_imgup"
        for name in ("deployment.json", "api-key"):
            shutil.move(folder / name, isolated / name)
        folder.rmdir()

        assert _listed() == [image]
        key = folder / "api-key"
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
        assert not (isolated / "deployment.json").exists() and not (isolated / "api-key").exists()
    finally:
        run_imgup("cleanup", "--yes")
        run_imgup("local", "stop")


def test_a_deployment_whose_local_stack_stopped_says_how_to_redeploy_and_cleanup_forgets_it(
    isolated: Path,
) -> None:
    try:
        assert run_imgup("deploy", "--local", "--stack-name", "gallery", "--region", "eu-west-1").code == 0
        assert run_imgup("local", "stop").code == 0

        listed = run_imgup("list")
        assert listed.code == 3
        assert "imgup deploy --local --stack-name gallery --region eu-west-1" in listed.stderr

        cleaned = run_imgup("cleanup", "--yes")
        assert cleaned.code == 0, cleaned.stderr
        assert "already gone" in cleaned.stderr
        assert run_imgup("status").code == 3
    finally:
        run_imgup("local", "stop")
