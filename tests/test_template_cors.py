"""infra.yaml's CORS, as the gallery page needs it: every route's preflight allows its methods
and the headers the page sends (x-api-key, Content-Type), API Gateway's own refusals carry
CORS headers, and the image bucket lets a page PUT exactly the presigned upload's headers and
GET the stored bytes (a download)."""

from __future__ import annotations

import pytest
import yaml

from tests.test_template import TEMPLATE, _CfnLoader


@pytest.fixture(scope="module")
def cfn() -> dict:
    return yaml.load(TEMPLATE.read_text(encoding="utf-8"), Loader=_CfnLoader)  # noqa: S506 (a SafeLoader)


def _ref(value) -> str | None:
    if isinstance(value, dict):
        return value.get("Ref") or (value.get("Fn::GetAtt") and "ROOT")
    return None


def _methods_by_resource(cfn: dict) -> dict[str, set[str]]:
    """The methods of each resource that a page calls with the API key (a share link, opened
    without the key by a browser's navigation, needs no preflight)."""
    found: dict[str, set[str]] = {}
    for body in cfn["Resources"].values():
        if body["Type"] == "AWS::ApiGateway::Method":
            props = body["Properties"]
            if props.get("ApiKeyRequired") or props["HttpMethod"] == "OPTIONS":
                found.setdefault(_ref(props["ResourceId"]), set()).add(props["HttpMethod"])
    return found


def _preflights(cfn: dict) -> dict[str, dict[str, str]]:
    answers = {}
    for body in cfn["Resources"].values():
        props = body.get("Properties", {})
        if body["Type"] == "AWS::ApiGateway::Method" and props["HttpMethod"] == "OPTIONS":
            params = props["Integration"]["IntegrationResponses"][0]["ResponseParameters"]
            answers[_ref(props["ResourceId"])] = {
                k.rsplit(".", 1)[1].lower(): str(v).strip("'") for k, v in params.items()
            }
    return answers


def test_every_resource_has_a_preflight_that_allows_its_methods_and_the_pages_headers(cfn: dict) -> None:
    methods = _methods_by_resource(cfn)
    preflights = _preflights(cfn)
    assert set(preflights) == set(methods)
    for resource, served in methods.items():
        answer = preflights[resource]
        assert served - {"OPTIONS"} <= set(answer["access-control-allow-methods"].split(",")), resource
        allowed = {h.strip().lower() for h in answer["access-control-allow-headers"].split(",")}
        assert {"content-type", "x-api-key"} <= allowed, resource


@pytest.mark.parametrize("kind", ["Default4xxResponse", "Default5xxResponse"])
def test_api_gateways_own_refusals_carry_cors_headers(cfn: dict, kind: str) -> None:
    params = cfn["Resources"][kind]["Properties"]["ResponseParameters"]
    assert "gatewayresponse.header.Access-Control-Allow-Origin" in params


def test_the_image_bucket_lets_a_page_put_the_presigned_upload_and_get_the_bytes(cfn: dict) -> None:
    rules = cfn["Resources"]["ImageBucket"]["Properties"]["CorsConfiguration"]["CorsRules"]
    put = [r for r in rules if "PUT" in r["AllowedMethods"]]
    get = [r for r in rules if "GET" in r["AllowedMethods"]]
    assert put and get
    # What the page sends with its PUT: uploadHeaders less Content-Length, which a browser sets.
    sent = {"content-type", "x-amz-checksum-sha256"}
    assert any(sent <= {h.lower() for h in r["AllowedHeaders"]} for r in put)
    assert all(r["AllowedOrigins"] == [{"Ref": "AllowedOrigin"}] for r in rules)
