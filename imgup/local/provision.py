"""Stand in, on the local stack, for the template resources that moto's CloudFormation skips.

moto creates the REST API but skips ``AWS::ApiGateway::ApiKey``, ``UsagePlan`` and
``UsagePlanKey`` (DESIGN.md, measured). Its API Gateway API does support them, so after each
local deploy we create the same three through that API, idempotently, named after the stack.
The emulator then enforces exactly those keys, as API Gateway would.
"""

from __future__ import annotations

from ..aws import AwsTarget, translate_errors


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
