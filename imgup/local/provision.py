"""Stand in, on the local stack, for the template parts that moto's CloudFormation skips.

- ``AWS::ApiGateway::ApiKey``, ``UsagePlan`` and ``UsagePlanKey``: moto skips them but its
  API Gateway API supports them, so after each local deploy ``ensure_api_key`` (called by the
  deployer) creates the same three, idempotently, named after the stack. The emulator then
  enforces exactly those keys, as API Gateway would.
- A bucket's ``VersioningConfiguration``, ``PublicAccessBlockConfiguration``,
  ``OwnershipControls`` and ``CorsConfiguration``: moto's CloudFormation applies only a
  bucket's encryption and tags. The server reads each deployed stack's template once per
  deploy (``stack_buckets``) and ``apply_bucket_settings`` puts the rest through moto's S3
  API, so the image bucket is versioned locally as it is on AWS. The same read gives the
  buckets' ``NotificationConfiguration`` to S3 event delivery.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any

from ..aws import AwsTarget, translate_errors

log = logging.getLogger("imgup.local")


def ensure_api_key(target: AwsTarget, stack_name: str, api_id: str, stage: str) -> str:
    """Create (or find) the stack's API key and usage plan; return the key's value."""
    apigw = target.client("apigateway")
    key_name, plan_name = f"{stack_name}-key", f"{stack_name}-plan"
    with translate_errors("Creating the local API key"):
        keys = apigw.get_api_keys(nameQuery=key_name, includeValues=True).get("items", [])
        key = next((k for k in keys if k.get("name") == key_name), None)
        if key is None:
            key = apigw.create_api_key(name=key_name, enabled=True)
        plans = apigw.get_usage_plans(limit=500).get("items", [])
        plan = next((p for p in plans if p.get("name") == plan_name), None)
        if plan is None:
            plan = apigw.create_usage_plan(
                name=plan_name,
                apiStages=[{"apiId": api_id, "stage": stage}],
                throttle={"rateLimit": 50.0, "burstLimit": 100},
            )
        elif not any(s.get("apiId") == api_id for s in plan.get("apiStages", [])):
            apigw.update_usage_plan(
                usagePlanId=plan["id"],
                patchOperations=[{"op": "add", "path": "/apiStages", "value": f"{api_id}:{stage}"}],
            )
        attached = apigw.get_usage_plan_keys(usagePlanId=plan["id"]).get("items", [])
        if not any(k.get("id") == key["id"] for k in attached):
            apigw.create_usage_plan_key(usagePlanId=plan["id"], keyId=key["id"], keyType="API_KEY")
    return key["value"]


# --- templates --------------------------------------------------------------------------


def _cfn_yaml_loader() -> Any:
    """A YAML loader that reads CloudFormation's short-form tags (!Ref, !GetAtt, ...)."""
    import yaml

    base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

    class Loader(base):  # type: ignore[misc, valid-type]
        pass

    def construct(loader: Any, suffix: str, node: Any) -> Any:
        name = "Ref" if suffix == "Ref" else f"Fn::{suffix}"
        if isinstance(node, yaml.ScalarNode):
            value: Any = loader.construct_scalar(node)
            if suffix == "GetAtt":
                value = value.split(".", 1)
        elif isinstance(node, yaml.SequenceNode):
            value = loader.construct_sequence(node, deep=True)
        else:
            value = loader.construct_mapping(node, deep=True)
        return {name: value}

    Loader.add_multi_constructor("!", construct)
    return Loader


def parse_template(body: Any) -> dict[str, Any]:
    if isinstance(body, dict):
        return body
    try:
        return json.loads(body)
    except ValueError:
        import yaml

        return yaml.load(body, Loader=_cfn_yaml_loader())  # noqa: S506  (a SafeLoader subclass)


@dataclass(frozen=True)
class BucketSpec:
    """A deployed ``AWS::S3::Bucket``: its name, its template properties, and what the
    names in them resolve to (the stack's parameters and physical resource ids)."""

    stack: str
    logical_id: str
    name: str
    properties: dict[str, Any]
    names: dict[str, str] = field(default_factory=dict)

    def resolve(self, value: Any) -> Any:
        """``value`` with every ``Ref`` to a parameter or resource replaced; None where a
        part cannot be resolved locally."""
        if isinstance(value, dict):
            if set(value) == {"Ref"}:
                return self.names.get(value["Ref"])
            if any(k == "Ref" or k.startswith("Fn::") for k in value):
                return None
            return {k: self.resolve(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        return value


def stack_buckets(cfn: Any) -> list[BucketSpec]:
    """The buckets of every live stack of a region, from the stacks' templates."""
    found = []
    for stack in cfn.describe_stacks().get("Stacks", []):
        status = stack["StackStatus"]
        if not status.endswith("_COMPLETE") or status.startswith("DELETE"):
            continue
        name = stack["StackName"]
        template = parse_template(cfn.get_template(StackName=name)["TemplateBody"])
        resources = cfn.describe_stack_resources(StackName=name)["StackResources"]
        # moto lists the resources it skipped without a logical id
        names = {
            r["LogicalResourceId"]: r.get("PhysicalResourceId", "")
            for r in resources
            if r.get("LogicalResourceId")
        }
        parameters = {p["ParameterKey"]: p.get("ParameterValue", "") for p in stack.get("Parameters", [])}
        names = {**parameters, **names, "AWS::StackName": name}
        for logical_id, resource in (template.get("Resources") or {}).items():
            if resource.get("Type") == "AWS::S3::Bucket" and names.get(logical_id):
                properties = resource.get("Properties") or {}
                found.append(BucketSpec(name, logical_id, names[logical_id], properties, names))
    return found


def apply_bucket_settings(s3: Any, buckets: list[BucketSpec]) -> None:
    """Put, through moto's S3 API, the bucket settings that moto's CloudFormation skips."""
    for bucket in buckets:
        for setting, apply in _SETTINGS.items():
            value = bucket.resolve(bucket.properties.get(setting))
            if not value:
                continue
            try:
                apply(s3, bucket.name, value)
            except Exception:  # one setting moto cannot take must not cost the others
                log.exception("applying %s to bucket %s failed", setting, bucket.name)


def _versioning(s3: Any, bucket: str, value: dict[str, Any]) -> None:
    status = value.get("Status")
    current = s3.get_bucket_versioning(Bucket=bucket).get("Status")
    if status in {"Enabled", "Suspended"} and status != current:
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": status})


def _public_access_block(s3: Any, bucket: str, value: dict[str, Any]) -> None:
    flags = ("BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets")
    config = {flag: str(value.get(flag, False)).lower() == "true" for flag in flags}
    s3.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration=config)


def _ownership(s3: Any, bucket: str, value: dict[str, Any]) -> None:
    rules = [{"ObjectOwnership": r["ObjectOwnership"]} for r in value.get("Rules") or [] if r]
    if rules:
        s3.put_bucket_ownership_controls(Bucket=bucket, OwnershipControls={"Rules": rules})


def _cors(s3: Any, bucket: str, value: dict[str, Any]) -> None:
    renamed = {
        "Id": "ID",
        "AllowedHeaders": "AllowedHeaders",
        "AllowedMethods": "AllowedMethods",
        "AllowedOrigins": "AllowedOrigins",
        "ExposedHeaders": "ExposeHeaders",
        "MaxAge": "MaxAgeSeconds",
    }
    rules = []
    for rule in value.get("CorsRules") or []:
        converted = {renamed[k]: v for k, v in rule.items() if k in renamed and v is not None}
        if "MaxAgeSeconds" in converted:
            converted["MaxAgeSeconds"] = int(converted["MaxAgeSeconds"])
        if isinstance(converted.get("AllowedOrigins"), list):
            converted["AllowedOrigins"] = [o for o in converted["AllowedOrigins"] if o]
        if converted.get("AllowedMethods") and converted.get("AllowedOrigins"):
            rules.append(converted)
    if rules:
        s3.put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": rules})


_SETTINGS = {
    "VersioningConfiguration": _versioning,
    "PublicAccessBlockConfiguration": _public_access_block,
    "OwnershipControls": _ownership,
    "CorsConfiguration": _cors,
}
