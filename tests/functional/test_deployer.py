"""deploy and cleanup against a real moto server on 127.0.0.1 (the ``moto_server`` fixture)."""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Iterator
from typing import Any

import botocore.exceptions
import pytest

from imgup import deployer, packaging
from imgup import stack as cfn
from imgup.aws import AwsTarget, local_target
from imgup.errors import AwsError
from imgup.packaging import Bundle

REGION = "us-east-1"

# The moto server runs in this process, so pytest's "warnings are errors" reaches its threads;
# moto warns about every template resource type its CloudFormation skips (DESIGN.md lists them).
pytestmark = pytest.mark.filterwarnings("ignore:Tried to parse AWS.+not supported by moto:UserWarning")


class Recorder:
    """A Reporter that keeps what it is told."""

    def __init__(self) -> None:
        self.steps: list[str] = []
        self.events: list[cfn.StackEvent] = []

    def step(self, text: str) -> None:
        self.steps.append(text)

    def stack_event(self, event: cfn.StackEvent) -> None:
        self.events.append(event)


def quick_waiter() -> cfn.Waiter:
    return cfn.Waiter(interval=0.05, timeout=60)


@pytest.fixture
def target(moto_server: str) -> AwsTarget:
    return local_target(moto_server)


@pytest.fixture
def stack_name(target: AwsTarget) -> Iterator[str]:
    """A fresh stack name; whatever a test leaves of that stack is removed afterwards, since
    the moto server is shared by the whole session."""
    name = "t" + uuid.uuid4().hex[:8]
    yield name
    if cfn.describe_stack(target, name) is not None:
        cfn.delete_stack(target, name, quick_waiter(), lambda event: None)
    # Every bucket of the stack, including one retained from a replaced stack, starts "<name>-".
    for bucket in target.client("s3").list_buckets()["Buckets"]:
        if bucket["Name"].startswith(name + "-"):
            cfn.delete_bucket(target, bucket["Name"])
    artifacts = deployer.artifacts_bucket_name(target.account_id(), REGION)
    cfn.empty_bucket(target, artifacts, prefix=f"imgup/{name}/")


def deploy(target: Any, name: str, reporter: Recorder | None = None, waiter: cfn.Waiter | None = None):
    return deployer.deploy(target, name, reporter or Recorder(), waiter or quick_waiter(), local=True)


def bucket_is_gone(target: AwsTarget, bucket: str) -> bool:
    try:
        target.client("s3").head_bucket(Bucket=bucket)
    except botocore.exceptions.ClientError as exc:
        return exc.response["Error"]["Code"] in {"404", "NoSuchBucket", "NotFound"}
    return False


def keys_under(target: AwsTarget, bucket: str, prefix: str) -> list[str]:
    if bucket_is_gone(target, bucket):
        return []
    answer = target.client("s3").list_object_versions(Bucket=bucket, Prefix=prefix)
    return [item["Key"] for kind in ("Versions", "DeleteMarkers") for item in answer.get(kind, [])]


# --- deploy ----------------------------------------------------------------------------


def test_deploy_creates_the_stack_and_returns_its_outputs_and_an_api_key_apigateway_knows(
    target, stack_name, moto_server
):
    reporter = Recorder()

    result = deploy(target, stack_name, reporter)

    stack = cfn.describe_stack(target, stack_name)
    assert stack is not None and stack["StackStatus"] == "CREATE_COMPLETE"
    assert result.changed is True
    assert result.outputs == cfn.outputs_of(stack)
    outputs = result.outputs
    deployment = result.deployment
    assert deployment.target == "local" and deployment.is_local
    assert deployment.stack_name == stack_name
    assert deployment.region == REGION
    assert deployment.endpoint_url == moto_server
    assert deployment.api_id == outputs["ApiId"]
    assert deployment.bucket == outputs["BucketName"]
    assert deployment.table == outputs["TableName"]
    assert deployment.max_upload_bytes == int(outputs["MaxUploadBytes"])
    assert deployment.api_url == f"{moto_server}/_api/{REGION}/{outputs['ApiId']}/{outputs['StageName']}"
    assert deployment.stack_status == "CREATE_COMPLETE"

    keys = target.client("apigateway").get_api_keys(includeValues=True)["items"]
    mine = [key for key in keys if key.get("value") == result.api_key]
    assert len(mine) == 1 and mine[0]["enabled"]
    plans = target.client("apigateway").get_usage_plans()["items"]
    plan = next(
        p for p in plans if {"apiId": outputs["ApiId"], "stage": outputs["StageName"]} in p["apiStages"]
    )
    plan_keys = target.client("apigateway").get_usage_plan_keys(usagePlanId=plan["id"])["items"]
    assert mine[0]["id"] in [k["id"] for k in plan_keys]

    # The code bundle, stored under a key that carries its own content hash. (Checked from the
    # stored bytes rather than by building again: others may edit the backend meanwhile.)
    [code_key] = [
        k for k in keys_under(target, deployment.artifacts_bucket, f"imgup/{stack_name}/") if "/backend-" in k
    ]
    code = target.client("s3").get_object(Bucket=deployment.artifacts_bucket, Key=code_key)["Body"].read()
    assert code_key == Bundle(code, hashlib.sha256(code).hexdigest()).key(stack_name)
    assert f"Uploaded s3://{deployment.artifacts_bucket}/{code_key}" in reporter.steps
    parameters = {p["ParameterKey"]: p["ParameterValue"] for p in stack["Parameters"]}
    assert (parameters["CodeBucket"], parameters["CodeKey"]) == (deployment.artifacts_bucket, code_key)
    assert f"Creating stack {stack_name}" in reporter.steps
    assert reporter.events, "the stack's events were reported"


def test_deploying_again_unchanged_changes_nothing_and_keeps_the_key(target, stack_name):
    first = deploy(target, stack_name)
    stack_id = cfn.describe_stack(target, stack_name)["StackId"]
    reporter = Recorder()

    second = deploy(target, stack_name, reporter)

    assert second.changed is False
    assert second.api_key == first.api_key
    assert second.outputs == first.outputs
    assert cfn.describe_stack(target, stack_name)["StackId"] == stack_id
    assert f"Stack {stack_name} is up to date" in reporter.steps
    assert not any(step.startswith("Uploaded") for step in reporter.steps)


# --- cleanup ---------------------------------------------------------------------------


def test_cleanup_really_removes_the_buckets_the_stack_and_only_this_stacks_artifacts(target, stack_name):
    result = deploy(target, stack_name)
    deployment = result.deployment
    buckets = deployer.stack_buckets(target, stack_name)
    assert deployment.bucket in buckets
    s3 = target.client("s3")
    # infra.yaml versions the bucket; moto's CloudFormation ignores that, so turn it on here.
    # Several versions and a delete marker: a versioned bucket is only empty without them.
    s3.put_bucket_versioning(Bucket=deployment.bucket, VersioningConfiguration={"Status": "Enabled"})
    for body in (b"one", b"two"):
        s3.put_object(Bucket=deployment.bucket, Key="images/a.png", Body=body)
    s3.put_object(Bucket=deployment.bucket, Key="images/b.png", Body=b"b")
    s3.delete_object(Bucket=deployment.bucket, Key="images/b.png")
    other = f"imgup/other{uuid.uuid4().hex[:6]}/backend-0.zip"
    s3.put_object(Bucket=deployment.artifacts_bucket, Key=other, Body=b"someone else's")
    reporter = Recorder()

    try:
        report = deployer.cleanup(target, deployment, reporter, quick_waiter())

        assert report.stack_deleted is True
        assert cfn.describe_stack(target, stack_name) is None
        for bucket in buckets:
            assert bucket_is_gone(target, bucket), f"{bucket} survived the cleanup"
        assert sorted(report.buckets_removed) == sorted(buckets)
        assert report.objects_deleted == 4
        assert keys_under(target, deployment.artifacts_bucket, f"imgup/{stack_name}/") == []
        assert report.artifacts_deleted == 3  # the code, the thumbnail function's layer and the template
        assert keys_under(target, deployment.artifacts_bucket, other) == [other]
    finally:
        cfn.empty_bucket(target, deployment.artifacts_bucket, prefix=other)


def test_cleanup_a_second_time_finds_nothing_and_does_not_fail(target, stack_name):
    deployment = deploy(target, stack_name).deployment
    deployer.cleanup(target, deployment, Recorder(), quick_waiter())

    report = deployer.cleanup(target, deployment, Recorder(), quick_waiter())

    assert report.stack_deleted is False
    assert report.objects_deleted == 0
    assert bucket_is_gone(target, deployment.bucket)


# --- stacks in odd states --------------------------------------------------------------


class StatusOverride:
    """The real target, except that ``describe_stacks`` reports ``status`` for stack ``name``
    while ``active()`` says so.

    Faked because moto cannot be made to produce these states: its CloudFormation never rolls
    a stack back (a resource it cannot create makes CreateStack itself fail, and one it gets
    wrong is still CREATE_COMPLETE; measured) and finishes every create before answering.
    Only this one call is overridden; everything else is the moto server."""

    def __init__(self, real: AwsTarget, name: str, status: str) -> None:
        self.real = real
        self.name = name
        self.status = status
        self.calls: list[str] = []  # CloudFormation calls made through this target

    def active(self) -> bool:
        raise NotImplementedError

    @property
    def region(self) -> str:
        return self.real.region

    @property
    def endpoint_url(self) -> str | None:
        return self.real.endpoint_url

    def account_id(self) -> str:
        return self.real.account_id()

    def client(self, service: str) -> Any:
        real_client = self.real.client(service)
        return _Cloudformation(self, real_client) if service == "cloudformation" else real_client


class _Cloudformation:
    def __init__(self, override: StatusOverride, real: Any) -> None:
        self._override = override
        self._real = real

    def __getattr__(self, operation: str) -> Any:
        call = getattr(self._real, operation)

        def recorded(**kwargs: Any) -> Any:
            self._override.calls.append(operation)
            return call(**kwargs)

        return recorded

    def describe_stacks(self, **kwargs: Any) -> dict:
        self._override.calls.append("describe_stacks")
        answer = self._real.describe_stacks(**kwargs)
        if self._override.active():
            for stack in answer["Stacks"]:
                if stack["StackName"] == self._override.name:
                    stack["StackStatus"] = self._override.status
        return answer


class RolledBack(StatusOverride):
    """ROLLBACK_COMPLETE until the stack is deleted."""

    def active(self) -> bool:
        return "delete_stack" not in self.calls


class StuckCreating(StatusOverride):
    """CREATE_IN_PROGRESS from the moment the stack is created, for ever."""

    def active(self) -> bool:
        return "create_stack" in self.calls


def test_a_stack_left_in_rollback_complete_is_deleted_and_created_again(target, stack_name):
    deploy(target, stack_name)
    old_id = cfn.describe_stack(target, stack_name)["StackId"]
    rolled_back = RolledBack(target, stack_name, "ROLLBACK_COMPLETE")
    reporter = Recorder()

    result = deploy(rolled_back, stack_name, reporter)

    assert result.changed is True
    assert "delete_stack" in rolled_back.calls and "create_stack" in rolled_back.calls
    assert rolled_back.calls.index("delete_stack") < rolled_back.calls.index("create_stack")
    stack = cfn.describe_stack(target, stack_name)
    assert stack["StackStatus"] == "CREATE_COMPLETE"
    assert stack["StackId"] != old_id
    assert result.deployment.stack_status == "CREATE_COMPLETE"
    assert any("ROLLBACK_COMPLETE" in step and "deleting" in step for step in reporter.steps)
    assert f"Creating stack {stack_name}" in reporter.steps


class FakeTime:
    """A clock that moves only when slept on."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_a_stack_that_never_finishes_creating_raises_aws_error_after_the_timeout(target, stack_name):
    stuck = StuckCreating(target, stack_name, "CREATE_IN_PROGRESS")
    fake = FakeTime()
    waiter = cfn.Waiter(interval=5, timeout=60, sleep=fake.sleep, clock=fake.clock)
    started = time.monotonic()

    with pytest.raises(AwsError) as caught:
        deploy(stuck, stack_name, waiter=waiter)

    assert type(caught.value) is AwsError  # not StackFailed: it may still finish
    assert "CREATE_IN_PROGRESS" in caught.value.message
    assert "60 s" in caught.value.message
    assert caught.value.hint
    assert 60 <= sum(fake.sleeps) <= 65
    assert set(fake.sleeps) == {5}
    assert time.monotonic() - started < 20  # the fake clock, not real waiting


def test_deploy_refuses_a_stack_that_is_busy(target, stack_name):
    deploy(target, stack_name)
    busy = StatusOverride(target, stack_name, "UPDATE_IN_PROGRESS")
    busy.active = lambda: True  # type: ignore[method-assign]

    with pytest.raises(AwsError) as caught:
        deploy(busy, stack_name)

    assert "busy" in caught.value.message
    assert "UPDATE_IN_PROGRESS" in caught.value.message
    assert "create_stack" not in busy.calls
    assert "delete_stack" not in busy.calls


def _parameters(target: AwsTarget, name: str) -> dict[str, str]:
    stack = cfn.describe_stack(target, name)
    assert stack is not None
    return {p["ParameterKey"]: p["ParameterValue"] for p in stack["Parameters"]}


def test_a_reserved_concurrency_given_once_sticks_until_given_again(target, stack_name):
    deployer.deploy(target, stack_name, Recorder(), quick_waiter(), local=True, reserved_concurrency=0)
    assert _parameters(target, stack_name)["ReservedConcurrency"] == "0"

    again = deploy(target, stack_name)  # no flag: the stack keeps its value, nothing changes
    assert again.changed is False
    assert _parameters(target, stack_name)["ReservedConcurrency"] == "0"

    changed = deployer.deploy(
        target, stack_name, Recorder(), quick_waiter(), local=True, reserved_concurrency=5
    )
    assert changed.changed is True
    assert _parameters(target, stack_name)["ReservedConcurrency"] == "5"


def test_deploy_passes_the_template_from_the_artifacts_bucket_so_it_may_exceed_51200_bytes(
    target, stack_name
):
    result = deploy(target, stack_name)

    artifacts = result.deployment.artifacts_bucket
    templates = [k for k in keys_under(target, artifacts, f"imgup/{stack_name}/") if "/template-" in k]
    assert len(templates) == 1
    stored = target.client("s3").get_object(Bucket=artifacts, Key=templates[0])["Body"].read()
    assert stored == packaging.template_path().read_bytes()
    deployed = target.client("cloudformation").get_template(StackName=stack_name)["TemplateBody"]
    assert deployed.strip() == stored.decode().strip()
