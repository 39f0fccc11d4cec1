"""CloudFormation and S3 primitives used by deploy and cleanup.

Each function does one AWS operation well: bounded waits (moto can leave a stack
``CREATE_IN_PROGRESS`` forever, real stacks take minutes), progress through an ``on_event``
callback, an injected ``sleep``/``clock`` for tests, and botocore errors translated into
``AwsError``/``StackFailed``. Nothing here prints.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .aws import AwsTarget, error_code, translate_errors
from .errors import AwsError, StackFailed

CAPABILITIES = ["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM"]
CREATED = {"CREATE_COMPLETE", "UPDATE_COMPLETE"}
FAILED = {
    "CREATE_FAILED",
    "ROLLBACK_COMPLETE",
    "ROLLBACK_FAILED",
    "UPDATE_ROLLBACK_COMPLETE",
    "UPDATE_ROLLBACK_FAILED",
    "UPDATE_FAILED",
    "DELETE_FAILED",
    "IMPORT_ROLLBACK_COMPLETE",
}
NO_CHANGES = ("didn't contain changes", "No updates are to be performed", "no changes")


@dataclass(frozen=True)
class StackEvent:
    logical_id: str
    resource_type: str
    status: str
    reason: str = ""


@dataclass
class Waiter:
    """How long to wait and how: polls every ``interval`` seconds, for ``timeout`` at most."""

    interval: float = 3.0
    timeout: float = 1800.0
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic


EventSink = Callable[[StackEvent], None]


def describe_stack(target: AwsTarget, name: str) -> dict[str, Any] | None:
    import botocore.exceptions

    cfn = target.client("cloudformation")
    with translate_errors(f"Describing stack {name}"):
        try:
            stacks = cfn.describe_stacks(StackName=name)["Stacks"]
        except botocore.exceptions.ClientError as exc:
            if error_code(exc) == "ValidationError" and "does not exist" in str(exc):
                return None
            raise
    stacks = [s for s in stacks if s.get("StackStatus") != "DELETE_COMPLETE"]
    return stacks[0] if stacks else None


def outputs_of(stack: dict[str, Any]) -> dict[str, str]:
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}


def _new_events(target: AwsTarget, name: str, seen: set[str], since: float | None) -> list[StackEvent]:
    cfn = target.client("cloudformation")
    with translate_errors(f"Reading the events of stack {name}"):
        raw = cfn.describe_stack_events(StackName=name).get("StackEvents", [])
    fresh = []
    for event in reversed(raw):  # oldest first
        if event["EventId"] in seen:
            continue
        seen.add(event["EventId"])
        stamp = event.get("Timestamp")
        if since is not None and stamp is not None and stamp.timestamp() < since:
            continue
        fresh.append(
            StackEvent(
                logical_id=event.get("LogicalResourceId", ""),
                resource_type=event.get("ResourceType", ""),
                status=event.get("ResourceStatus", ""),
                reason=event.get("ResourceStatusReason", "") or "",
            )
        )
    return fresh


def wait_for_stack(
    target: AwsTarget,
    name: str,
    waiter: Waiter,
    on_event: EventSink,
    *,
    since: float | None = None,
    deleting: bool = False,
) -> dict[str, Any] | None:
    """Poll until the stack leaves every *_IN_PROGRESS state; return it (None once deleted)."""
    seen: set[str] = set()
    failures: list[StackEvent] = []
    deadline = waiter.clock() + waiter.timeout
    while True:
        stack = describe_stack(target, name)
        if stack is not None:
            for event in _new_events(target, name, seen, since):
                if event.status.endswith("FAILED"):
                    failures.append(event)
                on_event(event)
        status = stack["StackStatus"] if stack else "DELETE_COMPLETE"
        if not status.endswith("IN_PROGRESS"):
            if status in FAILED or (deleting and status != "DELETE_COMPLETE"):
                cause = next((f for f in failures if f.reason), None)
                detail = f" {cause.logical_id}: {cause.reason}" if cause else ""
                raise StackFailed(
                    f"Stack {name} ended in {status}.{detail}",
                    "See the stack's events in the CloudFormation console, fix the cause, "
                    "and run the command again.",
                )
            return stack
        if waiter.clock() > deadline:
            raise AwsError(
                f"Stack {name} is still {status} after {waiter.timeout:.0f} s.",
                "It may finish on its own; check `imgup status` later, then run the command again.",
            )
        waiter.sleep(waiter.interval)


def delete_stack(target: AwsTarget, name: str, waiter: Waiter, on_event: EventSink) -> bool:
    """Delete the stack and wait until it is gone; False when there was none."""
    if describe_stack(target, name) is None:
        return False
    with translate_errors(f"Deleting stack {name}"):
        target.client("cloudformation").delete_stack(StackName=name)
    wait_for_stack(target, name, waiter, on_event, deleting=True)
    return True


def template_unchanged(
    target: AwsTarget, name: str, stack: dict[str, Any], body: str, params: dict[str, str]
) -> bool:
    current = {p["ParameterKey"]: p.get("ParameterValue") for p in stack.get("Parameters", [])}
    if any(current.get(k) != v for k, v in params.items()):
        return False
    with translate_errors(f"Reading the template of stack {name}"):
        deployed = target.client("cloudformation").get_template(StackName=name)["TemplateBody"]
    return isinstance(deployed, str) and deployed.strip() == body.strip()


def create_stack(
    target: AwsTarget,
    name: str,
    template_url: str,
    params: dict[str, str],
    waiter: Waiter,
    on_event: EventSink,
    *,
    tags: dict[str, str],
) -> None:
    """Create a new stack and wait for it.

    A new stack is created with CreateStack rather than a CREATE change set: the result is the
    same on AWS, and moto's CREATE change sets leave the stack without Outputs.
    """
    started = time.time() - 5
    with translate_errors(f"Creating stack {name}"):
        target.client("cloudformation").create_stack(
            StackName=name,
            TemplateURL=template_url,
            Parameters=_parameters(params),
            Capabilities=CAPABILITIES,
            Tags=[{"Key": k, "Value": v} for k, v in tags.items()],
        )
    wait_for_stack(target, name, waiter, on_event, since=started)


def _parameters(params: dict[str, str]) -> list[dict[str, str]]:
    return [{"ParameterKey": k, "ParameterValue": v} for k, v in params.items()]


def update_stack(
    target: AwsTarget,
    name: str,
    template_url: str,
    params: dict[str, str],
    waiter: Waiter,
    on_event: EventSink,
) -> bool:
    """Update through a change set (created, inspected, executed); False when it holds no change."""
    cfn = target.client("cloudformation")
    change_set = f"imgup-{int(time.time() * 1000)}"
    started = time.time() - 5
    with translate_errors(f"Creating a change set for stack {name}"):
        cfn.create_change_set(
            StackName=name,
            ChangeSetName=change_set,
            ChangeSetType="UPDATE",
            TemplateURL=template_url,
            Parameters=_parameters(params),
            Capabilities=CAPABILITIES,
        )
    deadline = waiter.clock() + min(waiter.timeout, 600)
    while True:
        with translate_errors(f"Reading change set {change_set}"):
            described = cfn.describe_change_set(StackName=name, ChangeSetName=change_set)
        status = described.get("Status", "")
        if status == "CREATE_COMPLETE":
            break
        if status == "FAILED":
            reason = described.get("StatusReason", "")
            if any(marker in reason for marker in NO_CHANGES):
                with translate_errors(f"Deleting empty change set {change_set}"):
                    cfn.delete_change_set(StackName=name, ChangeSetName=change_set)
                return False
            raise StackFailed(f"The change set for stack {name} failed: {reason}")
        if waiter.clock() > deadline:
            raise AwsError(f"The change set for stack {name} is still {status}.")
        waiter.sleep(waiter.interval)
    with translate_errors(f"Executing the change set for stack {name}"):
        cfn.execute_change_set(StackName=name, ChangeSetName=change_set)
    wait_for_stack(target, name, waiter, on_event, since=started)
    return True


# --- S3 buckets -----------------------------------------------------------------------


def bucket_exists(target: AwsTarget, bucket: str) -> bool:
    import botocore.exceptions

    with translate_errors(f"Checking bucket {bucket}"):
        try:
            target.client("s3").head_bucket(Bucket=bucket)
            return True
        except botocore.exceptions.ClientError as exc:
            if error_code(exc) in {"404", "NoSuchBucket", "NotFound"}:
                return False
            raise


def ensure_private_bucket(target: AwsTarget, bucket: str) -> None:
    """Create an encrypted, non-public bucket that imgup owns, unless it exists."""
    if bucket_exists(target, bucket):
        return
    s3 = target.client("s3")
    with translate_errors(f"Creating bucket {bucket}"):
        kwargs: dict[str, Any] = {"Bucket": bucket}
        if target.region != "us-east-1":
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": target.region}
        s3.create_bucket(**kwargs)
        s3.put_public_access_block(
            Bucket=bucket,
            PublicAccessBlockConfiguration={
                "BlockPublicAcls": True,
                "IgnorePublicAcls": True,
                "BlockPublicPolicy": True,
                "RestrictPublicBuckets": True,
            },
        )
        s3.put_bucket_encryption(
            Bucket=bucket,
            ServerSideEncryptionConfiguration={
                "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
            },
        )
        s3.put_bucket_tagging(Bucket=bucket, Tagging={"TagSet": [{"Key": "created-by", "Value": "imgup"}]})


def object_url(target: AwsTarget, bucket: str, key: str) -> str:
    """The virtual-hosted https URL of an object, as CloudFormation's TemplateURL wants it."""
    suffix = "amazonaws.com.cn" if target.region.startswith("cn-") else "amazonaws.com"
    return f"https://{bucket}.s3.{target.region}.{suffix}/{key}"


def put_object_once(target: AwsTarget, bucket: str, key: str, data: bytes) -> bool:
    """Upload ``data`` unless the key already exists (keys carry a content hash)."""
    import botocore.exceptions

    s3 = target.client("s3")
    with translate_errors(f"Uploading s3://{bucket}/{key}"):
        try:
            s3.head_object(Bucket=bucket, Key=key)
            return False
        except botocore.exceptions.ClientError as exc:
            if error_code(exc) not in {"404", "NoSuchKey", "NotFound"}:
                raise
        s3.put_object(Bucket=bucket, Key=key, Body=data)
    return True


def empty_bucket(
    target: AwsTarget, bucket: str, prefix: str = "", on_deleted: Callable[[int], None] | None = None
) -> int:
    """Delete every object version and delete marker (under ``prefix``); return the count."""
    if not bucket_exists(target, bucket):
        return 0
    s3 = target.client("s3")
    deleted = 0
    with translate_errors(f"Emptying bucket {bucket}"):
        paginator = s3.get_paginator("list_object_versions")
        for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
            batch = [
                {"Key": item["Key"], "VersionId": item["VersionId"]}
                for kind in ("Versions", "DeleteMarkers")
                for item in page.get(kind, [])
            ]
            for start in range(0, len(batch), 1000):
                chunk = batch[start : start + 1000]
                answer = s3.delete_objects(Bucket=bucket, Delete={"Objects": chunk, "Quiet": True})
                errors = answer.get("Errors", [])
                if errors:
                    first = errors[0]
                    raise AwsError(
                        f"Could not delete s3://{bucket}/{first.get('Key')}: "
                        f"{first.get('Code')}: {first.get('Message')}"
                    )
                deleted += len(chunk)
                if on_deleted:
                    on_deleted(deleted)
    return deleted


def delete_bucket(target: AwsTarget, bucket: str) -> bool:
    """Empty and delete a bucket; False when it did not exist."""
    if not bucket_exists(target, bucket):
        return False
    empty_bucket(target, bucket)
    with translate_errors(f"Deleting bucket {bucket}"):
        target.client("s3").delete_bucket(Bucket=bucket)
    return True
