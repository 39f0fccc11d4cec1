"""An API Gateway (REST, Lambda proxy) emulator over moto's API Gateway metadata.

URL scheme: ``<endpoint>/_api/<region>/<apiId>/<stage>/<path>``. It reads the API's resources
and methods from moto (as CloudFormation created them) once per deploy (the catalog keeps
them), so it answers only the routes the deployed API has; enforces ``apiKeyRequired``
against the keys of the usage plans that include the API's stage; builds a Lambda-proxy
event; runs the integration's function through ``LambdaRunner``; and turns the proxy answer
into HTTP. Answers that API Gateway itself
gives (unknown route, bad key, broken function) have API Gateway's shape and wording.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import time
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from .catalog import Catalog
from .lambdas import LambdaRunner
from .wire import BodyError, known_regions, read_body, respond, status_line

log = logging.getLogger("imgup.local")
PREFIX = "/_api/"
MAX_PAYLOAD = 10 * 1024 * 1024  # API Gateway's own request limit
_FUNCTION_ARN = re.compile(r"functions/(arn:[^/]+)/invocations")
CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Headers": "Content-Type,X-Api-Key,Authorization",
    "Access-Control-Allow-Methods": "GET,POST,DELETE,OPTIONS",
}


@dataclass(frozen=True)
class Route:
    path: str  # the resource path, e.g. /images/{imageId}
    method: str
    api_key_required: bool
    integration_type: str
    function_arn: str | None
    pattern: re.Pattern[str]


def _compile(path: str) -> re.Pattern[str]:
    parts = []
    for segment in path.strip("/").split("/"):
        if segment.startswith("{") and segment.endswith("}"):
            parts.append(f"(?P<{segment[1:-1].rstrip('+')}>[^/]+)")
        else:
            parts.append(re.escape(segment))
    return re.compile("^/" + "/".join(parts) + "$") if parts != [""] else re.compile("^/$")


class ApiGatewayEmulator:
    def __init__(self, runner: LambdaRunner, catalog: Catalog) -> None:
        self.runner = runner
        self.catalog = catalog

    # --- metadata from moto -----------------------------------------------------------

    def routes(self, region: str, api_id: str) -> list[Route]:
        def load() -> list[Route]:
            client = self.runner.clients("apigateway", region)
            routes = []
            resources = client.get_resources(restApiId=api_id, limit=500)["items"]
            for resource in resources:
                for method in resource.get("resourceMethods", {}) or {}:
                    detail = client.get_method(restApiId=api_id, resourceId=resource["id"], httpMethod=method)
                    integration = detail.get("methodIntegration", {}) or {}
                    match = _FUNCTION_ARN.search(integration.get("uri", "") or "")
                    routes.append(
                        Route(
                            path=resource["path"],
                            method=method,
                            api_key_required=bool(detail.get("apiKeyRequired")),
                            integration_type=integration.get("type", ""),
                            function_arn=match.group(1) if match else None,
                            pattern=_compile(resource["path"]),
                        )
                    )
            return routes

        return self.catalog.get(region, ("routes", api_id), load)

    def valid_keys(self, region: str, api_id: str, stage: str) -> frozenset[str]:
        def load() -> frozenset[str]:
            client = self.runner.clients("apigateway", region)
            # every key once, with its value: a plan may still name a key that was deleted
            keys = {k["id"]: k for k in client.get_api_keys(limit=500, includeValues=True).get("items", [])}
            values = set()
            for plan in client.get_usage_plans(limit=500).get("items", []):
                stages = plan.get("apiStages", [])
                if not any(s.get("apiId") == api_id and s.get("stage") == stage for s in stages):
                    continue
                for attached in client.get_usage_plan_keys(usagePlanId=plan["id"]).get("items", []):
                    key = keys.get(attached["id"], {})
                    if key.get("enabled", True) and key.get("value"):
                        values.add(key["value"])
            return frozenset(values)

        return self.catalog.get(region, ("keys", api_id, stage), load)

    # --- WSGI ---------------------------------------------------------------------------

    def __call__(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        return respond(self.handle(environ), start_response)

    def handle(self, environ: dict[str, Any]) -> tuple[str, dict[str, str], bytes]:
        parts = environ.get("PATH_INFO", "")[len(PREFIX) :].split("/", 3)
        if len(parts) < 3 or not all(parts[:3]):
            return _gateway_answer(403, "Missing Authentication Token")
        region, api_id, stage = parts[:3]
        if region not in known_regions():
            return _gateway_answer(403, "Forbidden")
        path = "/" + (parts[3] if len(parts) > 3 else "")
        method = environ.get("REQUEST_METHOD", "GET").upper()
        try:
            routes = self.routes(region, api_id)
        except Exception as exc:  # moto answers NotFound for an unknown API id
            log.info("no API %s in %s: %s", api_id, region, type(exc).__name__)
            return _gateway_answer(403, "Forbidden")
        matches = [(r, r.pattern.match(path)) for r in routes]
        matches = [(r, m) for r, m in matches if m]
        route, found = next(((r, m) for r, m in matches if r.method == method), (None, None))
        if route is None or found is None:
            return _gateway_answer(403, "Missing Authentication Token")
        headers = _request_headers(environ)
        if route.integration_type == "MOCK":  # CORS preflight
            return "200 OK", {**CORS_HEADERS, "Content-Type": "application/json"}, b"{}"
        api_key = headers.get("x-api-key", "")
        if route.api_key_required and api_key not in self.valid_keys(region, api_id, stage):
            return _gateway_answer(403, "Forbidden")
        try:
            raw = read_body(environ, MAX_PAYLOAD)
        except BodyError as exc:
            if exc.kind == "too-large":
                return _gateway_answer(413, "Request Too Long")
            return _gateway_answer(400, exc.message)
        if route.function_arn is None:
            return _gateway_answer(500, "Internal server error")
        event = _proxy_event(environ, route, found.groupdict(), headers, raw, api_id, stage)
        try:
            function = self.runner.function(region, route.function_arn)
            answer = self.runner.invoke(region, function, event)
            return _proxy_answer(answer)
        except Exception:
            log.exception("function of %s %s failed", method, route.path)
            return _gateway_answer(502, "Internal server error")


_ERROR_TYPES = {
    400: "BadRequestException",
    403: "ForbiddenException",
    413: "RequestEntityTooLargeException",
}


def _gateway_answer(status: int, message: str) -> tuple[str, dict[str, str], bytes]:
    headers = {
        **CORS_HEADERS,
        "Content-Type": "application/json",
        "x-amzn-ErrorType": _ERROR_TYPES.get(status, "InternalServerErrorException"),
    }
    return status_line(status), headers, json.dumps({"message": message}).encode()


def _request_headers(environ: dict[str, Any]) -> dict[str, str]:
    headers = {}
    for key, value in environ.items():
        if key.startswith("HTTP_"):
            headers[key[5:].replace("_", "-").lower()] = value
    if environ.get("CONTENT_TYPE"):
        headers["content-type"] = environ["CONTENT_TYPE"]
    return headers


def _proxy_event(
    environ: dict[str, Any],
    route: Route,
    path_params: dict[str, str],
    headers: dict[str, str],
    raw: bytes,
    api_id: str,
    stage: str,
) -> dict[str, Any]:
    query = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
    try:
        body: str | None = raw.decode("utf-8") if raw else None
        encoded = False
    except UnicodeDecodeError:
        body, encoded = base64.b64encode(raw).decode(), True
    path = environ.get("PATH_INFO", "").split("/", 5)
    return {
        "resource": route.path,
        "path": "/" + (path[5] if len(path) > 5 else ""),
        "httpMethod": route.method,
        "headers": headers or None,
        "multiValueHeaders": {k: [v] for k, v in headers.items()} or None,
        "queryStringParameters": {k: v[-1] for k, v in query.items()} or None,
        "multiValueQueryStringParameters": query or None,
        "pathParameters": path_params or None,
        "stageVariables": None,
        "requestContext": {
            "requestId": str(uuid.uuid4()),
            "apiId": api_id,
            "stage": stage,
            "resourcePath": route.path,
            "httpMethod": route.method,
            "requestTimeEpoch": int(time.time() * 1000),
            "identity": {
                "sourceIp": environ.get("REMOTE_ADDR", "127.0.0.1"),
                "apiKey": headers.get("x-api-key"),
                "userAgent": headers.get("user-agent"),
            },
        },
        "body": body,
        "isBase64Encoded": encoded,
    }


def _proxy_answer(answer: Any) -> tuple[str, dict[str, str], bytes]:
    if not isinstance(answer, dict) or not isinstance(answer.get("statusCode"), int):
        log.error("malformed Lambda proxy response: %s", type(answer).__name__)
        return _gateway_answer(502, "Internal server error")
    headers = {str(k): str(v) for k, v in (answer.get("headers") or {}).items()}
    for key, values in (answer.get("multiValueHeaders") or {}).items():
        headers[str(key)] = ",".join(str(v) for v in values)
    body = answer.get("body") or ""
    data = base64.b64decode(body) if answer.get("isBase64Encoded") else str(body).encode()
    return status_line(answer["statusCode"]), headers, data
