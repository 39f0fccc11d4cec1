"""infra.yaml's thumbnail function: Pillow only in its layer (the manylinux wheel for its
runtime and architecture), invoked only by the complete function, asynchronously retried."""

from __future__ import annotations

import pytest
import yaml

from tests.test_template import TEMPLATE, _CfnLoader


@pytest.fixture(scope="module")
def resources() -> dict:
    return yaml.load(TEMPLATE.read_text(encoding="utf-8"), Loader=_CfnLoader)["Resources"]  # noqa: S506


def test_only_the_thumbnail_function_has_the_pillow_layer_matching_its_runtime(resources: dict) -> None:
    functions = {k: v["Properties"] for k, v in resources.items() if v["Type"] == "AWS::Lambda::Function"}
    assert [name for name, props in functions.items() if "Layers" in props] == ["ThumbnailFunction"]
    thumbnail = functions["ThumbnailFunction"]
    assert thumbnail["Layers"] == {"Fn::If": ["OnMoto", {"Ref": "AWS::NoValue"}, [{"Ref": "PillowLayer"}]]}
    layer = resources["PillowLayer"]["Properties"]
    assert thumbnail["Runtime"] in layer["CompatibleRuntimes"]
    assert thumbnail["Architectures"] == layer["CompatibleArchitectures"] == ["x86_64"]
    assert layer["Content"] == {"S3Bucket": {"Ref": "CodeBucket"}, "S3Key": {"Ref": "PillowLayerKey"}}


def test_the_complete_function_alone_may_invoke_it_and_names_it(resources: dict) -> None:
    env = resources["CompleteFunction"]["Properties"]["Environment"]["Variables"]
    assert env["THUMBNAIL_FUNCTION"] == {"Ref": "ThumbnailFunction"}
    granted = []
    for name, resource in resources.items():
        if resource["Type"] != "AWS::IAM::Role":
            continue
        for policy in resource["Properties"].get("Policies", []):
            for statement in policy["PolicyDocument"]["Statement"]:
                actions = (
                    statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
                )
                if "lambda:InvokeFunction" in actions:
                    granted.append((name, statement["Resource"]))
    assert granted == [("CompleteRole", {"Fn::GetAtt": ["ThumbnailFunction", "Arn"]})]


def test_a_failed_thumbnail_is_retried_twice_then_dead_lettered(resources: dict) -> None:
    config = resources["ThumbnailInvokeConfig"]["Properties"]
    assert config["FunctionName"] == {"Ref": "ThumbnailFunction"}
    assert config["MaximumRetryAttempts"] == 2
    assert "TargetArn" in resources["ThumbnailFunction"]["Properties"]["DeadLetterConfig"]
