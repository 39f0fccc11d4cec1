"""The registry of remembered deployments: files on disk, migration, and the selection rule."""

from __future__ import annotations

import dataclasses
import json
import stat
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from imgup.config import Deployment, load_settings
from imgup.deployments import DeploymentId, Registry, matching, options_for, selecting_options
from imgup.errors import ExitCode, NotDeployed, UsageError


def a_deployment(stack_name: str = "imgup", region: str = "us-east-1", target: str = "local", **changes):
    values = dict(
        target=target,
        stack_name=stack_name,
        region=region,
        api_url=f"http://127.0.0.1:5000/_api/{region}/abc123/v1",
        api_id="abc123",
        bucket=f"{stack_name}-123456789012-{region}",
        table=f"{stack_name}-ImageTable-XYZ",
        artifacts_bucket=f"imgup-artifacts-123456789012-{region}",
        max_upload_bytes=5 * 1024 * 1024,
        endpoint_url="http://127.0.0.1:5000" if target == "local" else None,
        stack_status="CREATE_COMPLETE",
        deployed_at="2026-11-25T12:00:00+00:00",
    )
    values.update(changes)
    return Deployment(**values)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# --- on disk -----------------------------------------------------------------------------


def test_a_saved_deployment_loads_back_with_its_key_in_files_only_the_owner_can_read(isolated):
    registry = Registry()
    deployment = a_deployment(target="aws", profile="work", api_key_id="k123", account="123456789012")

    which = registry.save(deployment, "secret-api-key-value")

    assert which == DeploymentId("imgup", "us-east-1", "aws")
    folder = isolated / "deployments" / "aws_us-east-1_imgup"
    assert sorted(p.name for p in folder.iterdir()) == ["api-key", "deployment.json"]
    assert mode(folder) == 0o700 and mode(folder / "api-key") == 0o600
    assert "secret-api-key-value" not in (folder / "deployment.json").read_text()
    assert registry.ids() == [which]
    assert registry.load(which) == deployment
    assert registry.api_key(which) == "secret-api-key-value"


def test_saving_again_tightens_the_mode_of_an_api_key_file_someone_opened(isolated):
    registry = Registry()
    which = registry.save(a_deployment(), "old-key")
    registry.key_path(which).chmod(0o644)

    registry.save(a_deployment(), "new-key")

    assert mode(registry.key_path(which)) == 0o600
    assert registry.api_key(which) == "new-key"


def test_deployments_that_differ_only_in_region_or_target_are_all_remembered():
    registry = Registry()
    first = registry.save(a_deployment(region="us-east-1"), "k1")
    second = registry.save(a_deployment(region="us-west-2"), "k2")
    third = registry.save(a_deployment(target="aws"), "k3")

    assert registry.ids() == sorted([first, second, third])
    assert [registry.api_key(w) for w in (first, second, third)] == ["k1", "k2", "k3"]


def test_forgetting_removes_only_that_deployment_and_tolerates_doing_it_twice(isolated):
    registry = Registry()
    kept = registry.save(a_deployment(stack_name="gallery"), "k1")
    gone = registry.save(a_deployment(), "k2")

    registry.forget(gone)
    registry.forget(gone)

    assert registry.ids() == [kept]
    assert not (isolated / "deployments" / gone.dirname).exists()


def test_an_unreadable_record_hides_no_other_deployment_and_is_named_when_selected(isolated):
    registry = Registry()
    good = registry.save(a_deployment(stack_name="gallery"), "k1")
    bad = registry.save(a_deployment(), "k2")
    registry.record_path(bad).write_text('{"target": 5}')

    assert registry.ids() == [good, bad]
    assert registry.select(load_settings(stack_name="gallery")) == good
    with pytest.raises(UsageError) as caught:
        registry.load(registry.select(load_settings()))
    assert str(registry.record_path(bad)) in caught.value.message


def test_a_record_filed_under_another_deployments_name_is_refused(isolated):
    registry = Registry()
    registry.save(a_deployment(), "k")
    moved = isolated / "deployments" / "local_eu-west-1_imgup"
    (isolated / "deployments" / "local_us-east-1_imgup").rename(moved)

    [which] = registry.ids()
    with pytest.raises(UsageError) as caught:
        registry.load(which)

    assert "filed as imgup (local, eu-west-1)" in caught.value.message


def test_stray_files_in_the_registry_are_not_deployments(isolated):
    folder = isolated / "deployments"
    (folder / "notes").mkdir(parents=True)
    (folder / "local_us-east-1_imgup").mkdir()  # no record: a half-removed deployment
    (folder / "local_us-east-1_imgup" / "api-key").write_text("k")
    (folder / "local_moon_imgup").mkdir()
    (folder / "local_moon_imgup" / "deployment.json").write_text("{}")
    (folder / ".DS_Store").write_text("")

    assert Registry().ids() == []


@pytest.mark.parametrize(
    "name",
    ["local_us-east-1_imgup", "aws_eu-west-1_my-gallery", "local_us-gov-west-1_ab"],
)
def test_a_deployment_id_round_trips_through_its_directory_name(name):
    which = DeploymentId.parse(name)

    assert which is not None and which.dirname == name


@pytest.mark.parametrize(
    "name", ["cloud_us-east-1_imgup", "local_us-east-1", "local_us-east-1_Imgup", "local_x_y_z", ""]
)
def test_names_that_are_no_deployment_id_are_refused(name):
    assert DeploymentId.parse(name) is None


# --- records of earlier versions ---------------------------------------------------------


def write_legacy(directory: Path, deployment: Deployment, key: str = "legacy-key") -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "deployment.json").write_text(json.dumps(dataclasses.asdict(deployment)))
    (directory / "api-key").write_text(key + "\n")
    (directory / "api-key").chmod(0o600)


def test_the_single_deployment_of_an_earlier_version_is_moved_into_the_registry(isolated):
    legacy = a_deployment(stack_name="gallery", region="eu-west-1")
    write_legacy(isolated, legacy)
    registry = Registry()

    [which] = registry.ids()

    assert which == DeploymentId("gallery", "eu-west-1", "local")
    assert registry.load(which) == legacy
    assert registry.api_key(which) == "legacy-key"
    assert mode(registry.key_path(which)) == 0o600
    assert not (isolated / "deployment.json").exists() and not (isolated / "api-key").exists()


def test_a_corrupt_record_of_an_earlier_version_is_a_usage_error_naming_it(isolated):
    isolated.mkdir(parents=True)
    (isolated / "deployment.json").write_text('{"target": "local", "max_upload_bytes": "big"}')

    with pytest.raises(UsageError) as caught:
        Registry().ids()

    assert str(isolated / "deployment.json") in caught.value.message


# --- the selection rule ------------------------------------------------------------------


def remember(*ids: DeploymentId) -> Registry:
    registry = Registry()
    for which in ids:
        registry.save(a_deployment(which.stack_name, which.region, which.target), "k")
    return registry


LOCAL_EAST = DeploymentId("imgup", "us-east-1", "local")
LOCAL_WEST = DeploymentId("imgup", "us-west-2", "local")
AWS_EAST = DeploymentId("imgup", "us-east-1", "aws")
GALLERY = DeploymentId("gallery", "eu-west-1", "aws")


def test_with_nothing_remembered_every_selection_is_not_deployed():
    with pytest.raises(NotDeployed) as caught:
        Registry().select(load_settings())

    assert caught.value.exit_code == ExitCode.NOT_DEPLOYED
    assert "imgup deploy --local" in (caught.value.hint or "")


def test_the_only_deployment_is_selected_whatever_its_name():
    assert remember(GALLERY).select(load_settings()) == GALLERY


def test_among_several_the_one_with_the_default_stack_name_is_selected():
    assert remember(GALLERY, LOCAL_EAST).select(load_settings()) == LOCAL_EAST


def test_several_with_the_default_name_and_nothing_given_is_a_usage_error_saying_how_to_choose():
    registry = remember(GALLERY, LOCAL_EAST, LOCAL_WEST)

    with pytest.raises(UsageError) as caught:
        registry.select(load_settings())

    assert caught.value.exit_code == ExitCode.USAGE
    assert "imgup (local, us-east-1), imgup (local, us-west-2)" in caught.value.message
    assert "--region us-east-1 for imgup (local, us-east-1)" in (caught.value.hint or "")
    assert "--region us-west-2 for imgup (local, us-west-2)" in (caught.value.hint or "")


def test_a_stack_name_from_the_environment_selects_and_one_not_remembered_is_not_deployed(monkeypatch):
    registry = remember(GALLERY, LOCAL_EAST)
    monkeypatch.setenv("IMGUP_STACK_NAME", "gallery")
    assert registry.select(load_settings()) == GALLERY

    monkeypatch.setenv("IMGUP_STACK_NAME", "other")
    with pytest.raises(NotDeployed) as caught:
        registry.select(load_settings())

    assert "IMGUP_STACK_NAME=other" in caught.value.message
    assert "gallery (aws, eu-west-1), imgup (local, us-east-1)" in caught.value.message
    assert "imgup deploy --stack-name other" in (caught.value.hint or "")


def test_a_config_file_stack_name_selects_too(isolated):
    registry = remember(GALLERY, LOCAL_EAST)
    (isolated / "config.json").write_text('{"stack_name": "gallery"}')

    assert registry.select(load_settings()) == GALLERY


def test_region_and_target_narrow_the_selection():
    registry = remember(LOCAL_EAST, LOCAL_WEST, AWS_EAST)

    assert registry.select(load_settings(region="us-west-2")) == LOCAL_WEST
    assert registry.select(load_settings(region="us-east-1", target="aws")) == AWS_EAST
    assert registry.select(load_settings(region="us-east-1", target="local")) == LOCAL_EAST
    with pytest.raises(UsageError) as caught:
        registry.select(load_settings(region="us-east-1"))
    assert "--aws for imgup (aws, us-east-1)" in (caught.value.hint or "")
    assert "--local for imgup (local, us-east-1)" in (caught.value.hint or "")


def test_a_target_flag_is_named_as_the_user_typed_it():
    assert load_settings(target="local").sources == {"target": "--local"}
    with pytest.raises(UsageError):
        load_settings(target="cloud")


ids_strategy = st.lists(
    st.builds(
        DeploymentId,
        st.sampled_from(["imgup", "gallery", "ab"]),
        st.sampled_from(["us-east-1", "us-west-2", "eu-west-1"]),
        st.sampled_from(["local", "aws"]),
    ),
    min_size=1,
    max_size=8,
    unique=True,
)


@given(ids_strategy, st.data())
def test_the_options_listed_for_a_deployment_select_exactly_it(ids, data):
    wanted = data.draw(st.sampled_from(ids))
    given_names = data.draw(st.sets(st.sampled_from(["stack_name", "region", "target"])))
    given_criteria = {name: getattr(data.draw(st.sampled_from(ids)), name) for name in given_names}

    options = selecting_options(wanted, ids, given_criteria)

    # Options override what the environment gave; together they select only ``wanted``.
    flags = {}
    args = iter(options)
    for arg in args:
        if arg in ("--local", "--aws"):
            flags["target"] = arg[2:]
        else:
            flags[arg[2:].replace("-", "_")] = next(args)
    assert matching(ids, {**given_criteria, **flags}) == [wanted]
    assert options_for(flags) == options
    # and no shorter list of options would do
    assert len(flags) == min(
        len(names)
        for names in (
            set(),
            {"stack_name"},
            {"region"},
            {"target"},
            {"stack_name", "region"},
            {"stack_name", "target"},
            {"region", "target"},
            {"stack_name", "region", "target"},
        )
        if matching(ids, {**given_criteria, **{n: getattr(wanted, n) for n in names}}) == [wanted]
    )


class FakeAccountTarget:
    """The one thing ``_refuse_another_account`` asks of an AWS target."""

    def __init__(self, account: str) -> None:
        self.account = account

    def account_id(self) -> str:
        return self.account


def test_deploying_a_remembered_aws_stack_from_another_account_is_refused_before_anything():
    from imgup.context import _refuse_another_account

    registry = Registry()
    which = registry.save(a_deployment(target="aws", account="111111111111"), "k")

    _refuse_another_account(registry, which, FakeAccountTarget("111111111111"))  # same: fine
    _refuse_another_account(registry, GALLERY, FakeAccountTarget("222222222222"))  # not remembered
    with pytest.raises(UsageError) as caught:
        _refuse_another_account(registry, which, FakeAccountTarget("222222222222"))

    assert "111111111111" in caught.value.message and "222222222222" in caught.value.message
    assert "imgup cleanup --aws --stack-name imgup --region us-east-1" in (caught.value.hint or "")


@pytest.mark.parametrize(
    ("which", "command"),
    [
        (LOCAL_EAST, "imgup deploy --local"),
        (LOCAL_WEST, "imgup deploy --local --region us-west-2"),
        (GALLERY, "imgup deploy --stack-name gallery --region eu-west-1"),
    ],
)
def test_a_broken_record_names_the_deploy_command_that_rewrites_it(which, command):
    registry = remember(which)
    registry.record_path(which).write_text("{")

    with pytest.raises(UsageError) as caught:
        registry.load(which)

    assert f"Run `{command}` to rewrite it" in (caught.value.hint or "")
    assert str(registry.record_path(which).parent) in (caught.value.hint or "")
