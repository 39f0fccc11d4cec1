"""S3 ObjectCreated notifications for the local stack.

moto ignores a bucket's NotificationConfiguration, so the local stack reads the wiring from
the deployed templates themselves: every ``AWS::S3::Bucket`` with ``LambdaConfigurations`` in
a stack of the region, resolved to physical names through the stack's resources. The server
reports each object-creating S3 request that succeeded; matching events are delivered to
the function in a background thread, asynchronously, as S3 does.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import json
import logging
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote_plus

from .lambdas import LambdaRunner, TtlCache

log = logging.getLogger("imgup.local")
_CREDENTIAL_REGION = re.compile(r"Credential=?[^/]+/\d{8}/([a-z0-9-]+)/s3/")


@dataclass(frozen=True)
class Subscription:
    function: str  # name or ARN
    events: tuple[str, ...]
    prefix: str
    suffix: str

    def wants(self, event_name: str, key: str) -> bool:
        return (
            key.startswith(self.prefix)
            and key.endswith(self.suffix)
            and any(fnmatch.fnmatchcase(event_name, pattern) for pattern in self.events)
        )


def _cfn_yaml_loader() -> Any:
    """A YAML loader that reads CloudFormation's short-form tags (!Ref, !GetAtt, ...)."""
    import yaml

    class Loader(yaml.SafeLoader):
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


def _logical_target(value: Any) -> str | None:
    if isinstance(value, dict):
        if "Fn::GetAtt" in value:
            return value["Fn::GetAtt"][0]
        if "Ref" in value:
            return value["Ref"]
    return None


def subscriptions_in(template: dict[str, Any], physical: dict[str, str]) -> dict[str, list[Subscription]]:
    found: dict[str, list[Subscription]] = {}
    for logical_id, resource in (template.get("Resources") or {}).items():
        if resource.get("Type") != "AWS::S3::Bucket" or logical_id not in physical:
            continue
        config = (resource.get("Properties") or {}).get("NotificationConfiguration") or {}
        for item in config.get("LambdaConfigurations") or []:
            function = item.get("Function")
            target = _logical_target(function)
            function_id = physical.get(target, target) if target else function
            rules = ((item.get("Filter") or {}).get("S3Key") or {}).get("Rules") or []
            values = {str(r.get("Name", "")).lower(): str(r.get("Value", "")) for r in rules}
            event = item.get("Event")
            events = tuple(event) if isinstance(event, list) else (str(event),)
            if isinstance(function_id, str):
                found.setdefault(physical[logical_id], []).append(
                    Subscription(function_id, events, values.get("prefix", ""), values.get("suffix", ""))
                )
    return found


class NotificationRouter:
    def __init__(self, runner: LambdaRunner, workers: int = 4) -> None:
        self.runner = runner
        self._wiring = TtlCache()
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="s3-events")

    def wiring(self, region: str) -> dict[str, list[Subscription]]:
        def load() -> dict[str, list[Subscription]]:
            cfn = self.runner.client("cloudformation", region)
            wiring: dict[str, list[Subscription]] = {}
            for stack in cfn.describe_stacks().get("Stacks", []):
                if not stack["StackStatus"].endswith("_COMPLETE") or "DELETE" in stack["StackStatus"]:
                    continue
                name = stack["StackName"]
                template = parse_template(cfn.get_template(StackName=name)["TemplateBody"])
                resources = cfn.describe_stack_resources(StackName=name)["StackResources"]
                # moto lists the resources it skipped without a logical id
                physical = {
                    r["LogicalResourceId"]: r.get("PhysicalResourceId", "")
                    for r in resources
                    if r.get("LogicalResourceId")
                }
                for bucket, subs in subscriptions_in(template, physical).items():
                    wiring.setdefault(bucket, []).extend(subs)
            return wiring

        return self._wiring.get(region, load)

    @staticmethod
    def region_of(environ: dict[str, Any]) -> str | None:
        """The region of an S3 request's credential scope; None when it is not signed for S3."""
        for source in (environ.get("HTTP_AUTHORIZATION", ""), environ.get("QUERY_STRING", "")):
            match = _CREDENTIAL_REGION.search(source.replace("%2F", "/"))
            if match:
                return match.group(1)
        return None

    def object_created(self, region: str, bucket: str, key: str, size: int, event_name: str) -> None:
        self._pool.submit(self._deliver, region, bucket, key, size, event_name)

    def _deliver(self, region: str, bucket: str, key: str, size: int, event_name: str) -> None:
        try:
            for sub in self.wiring(region).get(bucket, []):
                if not sub.wants(f"s3:{event_name}", key):
                    continue
                function = self.runner.function(region, sub.function)
                self.runner.invoke(region, function, s3_event(region, bucket, key, size, event_name))
        except Exception:
            log.exception("delivering %s for s3://%s/%s failed", event_name, bucket, key)

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=False)


def s3_event(region: str, bucket: str, key: str, size: int, event_name: str) -> dict[str, Any]:
    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    return {
        "Records": [
            {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "awsRegion": region,
                "eventTime": now,
                "eventName": event_name,
                "s3": {
                    "s3SchemaVersion": "1.0",
                    "bucket": {"name": bucket, "arn": f"arn:aws:s3:::{bucket}"},
                    "object": {"key": quote_plus(key, safe="/"), "size": size},
                },
            }
        ]
    }
