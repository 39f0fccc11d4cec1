"""Deploy and clean up a whole imgup system.

deploy:  package the backend (deterministic zip) -> artifacts bucket imgup owns
         (``imgup-artifacts-<account>-<region>``, key with the content hash) -> replace a stack
         left in ROLLBACK_COMPLETE -> skip when template and parameters are unchanged, else a
         change set (CREATE or UPDATE) -> wait, reporting stack events -> the API key (from
         the stack on AWS; created through moto's API on the local stack, with the share
         secret that moto's CloudFormation cannot make) -> a ``Deployment``.
cleanup: empty every bucket of the stack (all versions and delete markers) -> delete the
         stack and wait -> make sure its buckets are really gone (moto reports
         DELETE_COMPLETE and leaves a non-empty bucket behind) -> delete this stack's artifacts
         (and the artifacts bucket once empty).

Progress goes to a ``Reporter``; nothing here prints or prompts.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import subprocess
from dataclasses import dataclass, field
from typing import Protocol

from . import stack as cfn
from .aws import AwsTarget, error_code, translate_errors
from .config import Deployment
from .errors import AwsError, NotDeployed
from .packaging import Bundle, build_bundle, template_path

REPLACEABLE = {"ROLLBACK_COMPLETE", "ROLLBACK_FAILED", "CREATE_FAILED", "DELETE_FAILED"}


class Reporter(Protocol):
    def step(self, text: str) -> None: ...

    def stack_event(self, event: cfn.StackEvent) -> None: ...


@dataclass
class DeployResult:
    deployment: Deployment
    api_key: str
    changed: bool
    outputs: dict[str, str]


def _pillow_layer(local: bool, reporter: Reporter) -> Bundle:
    """The thumbnail function's Pillow layer: on AWS the manylinux wheel (downloaded once, kept
    in the config directory); the local stack needs none (it runs the function in-process)."""
    from .config import config_dir
    from .packaging import LayerError, pillow_layer, placeholder_layer

    if local:
        return placeholder_layer()
    reporter.step("Packaging the thumbnail function's Pillow layer (manylinux wheel)")
    try:
        return pillow_layer(config_dir() / "cache" / "layers")
    except (LayerError, OSError, subprocess.SubprocessError) as exc:
        raise AwsError(
            f"Cannot get Pillow's manylinux wheel for the thumbnail function's layer: {exc}",
            "It comes from your Python package index (pip download); check that pip can reach it.",
        ) from None


def artifacts_bucket_name(account: str, region: str) -> str:
    return f"imgup-artifacts-{account}-{region}"


def deploy(
    target: AwsTarget,
    stack_name: str,
    reporter: Reporter,
    waiter: cfn.Waiter,
    *,
    local: bool,
    profile: str | None = None,
    alert_email: str | None = None,
    reserved_concurrency: int | None = None,
) -> DeployResult:
    region = target.region
    reporter.step("Packaging the backend")
    bundle = build_bundle()
    body = template_path().read_text(encoding="utf-8")
    account = target.account_id()
    artifacts = artifacts_bucket_name(account, region)
    code_key = bundle.key(stack_name)
    cfn.ensure_private_bucket(target, artifacts)
    if cfn.put_object_once(target, artifacts, code_key, bundle.data):
        reporter.step(f"Uploaded s3://{artifacts}/{code_key}")
    layer = _pillow_layer(local, reporter)
    layer_key = layer.key(stack_name)
    if cfn.put_object_once(target, artifacts, layer_key, layer.data):
        reporter.step(f"Uploaded s3://{artifacts}/{layer_key} ({len(layer.data) / 1e6:.1f} MB)")
    # From S3, a template may hold 1 MB; passed inline (TemplateBody), only 51,200 bytes.
    template_key = f"imgup/{stack_name}/template-{hashlib.sha256(body.encode()).hexdigest()[:20]}.yaml"
    cfn.put_object_once(target, artifacts, template_key, body.encode("utf-8"))
    template_url = cfn.object_url(target, artifacts, template_key)

    stack = cfn.describe_stack(target, stack_name)
    if stack and stack["StackStatus"] in REPLACEABLE:
        reporter.step(f"Stack {stack_name} is {stack['StackStatus']}: deleting it to start over")
        cfn.delete_stack(target, stack_name, waiter, reporter.stack_event)
        stack = None
    if stack and stack["StackStatus"].endswith("IN_PROGRESS"):
        raise AwsError(
            f"Stack {stack_name} is busy ({stack['StackStatus']}).",
            "Wait for it to finish (see `imgup status`), then deploy again.",
        )
    previous = {p["ParameterKey"]: p.get("ParameterValue", "") for p in (stack or {}).get("Parameters", [])}
    params = {
        "CodeBucket": artifacts,
        "CodeKey": code_key,
        "PillowLayerKey": layer_key,
        "AlertEmail": alert_email if alert_email is not None else previous.get("AlertEmail", ""),
    }
    # Given once, a setting sticks: later deploys without the flag keep the stack's value.
    if reserved_concurrency is not None:
        params["ReservedConcurrency"] = str(reserved_concurrency)
    elif "ReservedConcurrency" in previous:
        params["ReservedConcurrency"] = previous["ReservedConcurrency"]
    if stack and cfn.template_unchanged(target, stack_name, stack, body, params):
        reporter.step(f"Stack {stack_name} is up to date")
        changed = False
    else:
        if stack is None:
            reporter.step(f"Creating stack {stack_name}")
            cfn.create_stack(
                target,
                stack_name,
                template_url,
                params,
                waiter,
                reporter.stack_event,
                tags={"created-by": "imgup"},
            )
            changed = True
        else:
            reporter.step(f"Updating stack {stack_name}")
            changed = cfn.update_stack(target, stack_name, template_url, params, waiter, reporter.stack_event)
            if not changed:
                reporter.step(f"Stack {stack_name} is up to date")
        stack = cfn.describe_stack(target, stack_name)
    if stack is None:
        raise AwsError(f"Stack {stack_name} vanished during the deploy.")
    outputs = cfn.outputs_of(stack)
    missing = {"ApiId", "StageName", "BucketName", "TableName", "MaxUploadBytes"} - set(outputs)
    if missing:
        raise AwsError(f"Stack {stack_name} lacks the outputs {', '.join(sorted(missing))}.")

    if local:
        from .local.provision import ensure_api_key

        api_key = ensure_api_key(target, stack_name, outputs["ApiId"], outputs["StageName"])
        ensure_local_share_secret(target, stack_name)
        api_url = f"{target.endpoint_url}/_api/{region}/{outputs['ApiId']}/{outputs['StageName']}"
    else:
        api_key = _stack_api_key(target, outputs)
        api_url = outputs["ApiUrl"]
    deployment = Deployment(
        target="local" if local else "aws",
        stack_name=stack_name,
        region=region,
        api_url=api_url,
        api_id=outputs["ApiId"],
        bucket=outputs["BucketName"],
        table=outputs["TableName"],
        artifacts_bucket=artifacts,
        max_upload_bytes=int(outputs["MaxUploadBytes"]),
        profile=profile,
        endpoint_url=target.endpoint_url,
        api_key_id=outputs.get("ApiKeyId"),
        stack_status=stack["StackStatus"],
        deployed_at=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        account=account,
    )
    return DeployResult(deployment, api_key, changed, outputs)


def local_share_secret_name(stack_name: str) -> str:
    """The share secret on the local stack: infra.yaml's SHARE_SECRET_ID on moto names it."""
    return f"{stack_name}-share-secret"


def ensure_local_share_secret(target: AwsTarget, stack_name: str) -> None:
    """Create the local stack's share secret unless it exists: moto's CloudFormation cannot
    create an AWS::SecretsManager::Secret (the template makes ShareSecret on AWS only), but
    moto's Secrets Manager API works, and the function reads the secret through it.

    (It stands in for a skipped resource like imgup.local.provision does for the API key;
    it lives here while another change reshapes imgup/local.)
    """
    import secrets

    from botocore.exceptions import ClientError

    client = target.client("secretsmanager")
    name = local_share_secret_name(stack_name)
    with translate_errors("Creating the local share secret"):
        try:
            client.describe_secret(SecretId=name)
            return
        except ClientError as exc:
            if error_code(exc) != "ResourceNotFoundException":
                raise
        client.create_secret(Name=name, SecretString=secrets.token_urlsafe(48))


def _stack_api_key(target: AwsTarget, outputs: dict[str, str]) -> str:
    key_id = outputs.get("ApiKeyId")
    if not key_id:
        raise AwsError("The stack has no ApiKeyId output; infra.yaml and imgup disagree.")
    with translate_errors("Reading the API key"):
        return target.client("apigateway").get_api_key(apiKey=key_id, includeValue=True)["value"]


@dataclass
class CleanupReport:
    objects_deleted: int = 0
    stack_deleted: bool = False
    buckets_removed: list[str] = field(default_factory=list)
    artifacts_deleted: int = 0


def stack_buckets(target: AwsTarget, stack_name: str) -> list[str]:
    with translate_errors(f"Listing the resources of stack {stack_name}"):
        resources = target.client("cloudformation").describe_stack_resources(StackName=stack_name)[
            "StackResources"
        ]
    return [
        r["PhysicalResourceId"]
        for r in resources
        if r.get("ResourceType") == "AWS::S3::Bucket" and r.get("PhysicalResourceId")
    ]


def cleanup(
    target: AwsTarget, deployment: Deployment, reporter: Reporter, waiter: cfn.Waiter
) -> CleanupReport:
    report = CleanupReport()
    name = deployment.stack_name
    buckets = [deployment.bucket]
    if cfn.describe_stack(target, name) is not None:
        buckets = sorted(set(buckets) | set(stack_buckets(target, name)))
    for bucket in buckets:
        reporter.step(f"Emptying bucket {bucket}")
        report.objects_deleted += cfn.empty_bucket(target, bucket)
    reporter.step(f"Deleting stack {name}")
    report.stack_deleted = cfn.delete_stack(target, name, waiter, reporter.stack_event)
    if deployment.is_local:
        _delete_local_share_secret(target, name)
    for bucket in buckets:
        if cfn.bucket_exists(target, bucket):
            reporter.step(f"Bucket {bucket} outlived its stack: deleting it")
            cfn.delete_bucket(target, bucket)
        if cfn.bucket_exists(target, bucket):
            raise AwsError(f"Bucket {bucket} still exists after cleanup.")
        report.buckets_removed.append(bucket)
    reporter.step(f"Deleting the artifacts of {name}")
    report.artifacts_deleted = cfn.empty_bucket(target, deployment.artifacts_bucket, prefix=f"imgup/{name}/")
    if cfn.bucket_exists(target, deployment.artifacts_bucket):
        with translate_errors("Listing the artifacts bucket"):
            left = target.client("s3").list_object_versions(Bucket=deployment.artifacts_bucket, MaxKeys=1)
        if not left.get("Versions") and not left.get("DeleteMarkers"):
            cfn.delete_bucket(target, deployment.artifacts_bucket)
    return report


def _delete_local_share_secret(target: AwsTarget, stack_name: str) -> None:
    from botocore.exceptions import ClientError

    with translate_errors("Deleting the local share secret"):
        try:
            target.client("secretsmanager").delete_secret(
                SecretId=local_share_secret_name(stack_name), ForceDeleteWithoutRecovery=True
            )
        except ClientError as exc:
            if error_code(exc) != "ResourceNotFoundException":
                raise


def require_stack(target: AwsTarget, deployment: Deployment) -> dict:
    stack = cfn.describe_stack(target, deployment.stack_name)
    if stack is None:
        raise NotDeployed(
            f"Stack {deployment.stack_name} no longer exists in {deployment.region}.",
            "Run `imgup deploy` to create it again.",
        )
    return stack
