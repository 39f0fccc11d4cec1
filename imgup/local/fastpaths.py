"""Cheaper answers from moto for what the local stack does most: DynamoDB results.

moto (5.2) turns every result into its wire form with a generic, model-driven serializer that
looks each member of each shape up under several spellings. For DynamoDB's item operations
that is most of the work: a GetItem of ten attributes walks about a hundred members, 60 % of
what the stack spends answering it, and a 1,000-image page of a listing pays it a thousand
times. Their results are already in wire form (``{"Item": {"name": {"S": "x"}}}``), so
writing them as JSON gives the same answer. Only results made of plain JSON values take this
path; anything else (bytes, timestamps, objects) goes to moto's serializer as before, and so
does every other service. ``tests/unit/test_local_fastpaths.py`` holds the two answers equal.
"""

from __future__ import annotations

import json
from typing import Any

_FAST = "_imgup_fast"


def install() -> None:
    """Wrap moto's ActionResult.execute_result once (idempotent)."""
    from moto.core.responses import ActionResult

    original = ActionResult.execute_result
    if getattr(original, _FAST, False):
        return

    def execute_result(self: Any, context: Any) -> Any:
        # ActionResult and its kin that do not serialize otherwise (DynamoResult), not
        # PaginatedResult, which pages its result first.
        owner = next(c for c in type(self).__mro__ if "execute_result" in c.__dict__)
        if owner is ActionResult and context.service_model.service_name == "dynamodb":
            body = plain_json(self.result, _members(context.operation_model))
            if body is not None:
                status, headers, _ = original(ActionResult({}), context)
                return status, headers, body
        return original(self, context)

    setattr(execute_result, _FAST, True)
    execute_result.__wrapped__ = original  # type: ignore[attr-defined]
    ActionResult.execute_result = execute_result  # type: ignore[method-assign]


def plain_json(result: Any, members: frozenset[str] | None = None) -> str | None:
    """``result`` as compact JSON, as moto's serializer writes it: None members left out, and
    (with ``members``, the output shape's) no top-level key the answer does not have. None
    when it holds anything but dicts, lists, strings, numbers and booleans."""
    if not isinstance(result, dict):
        return None
    if members is not None:
        result = {k: v for k, v in result.items() if k in members}
    try:
        return json.dumps(_without_none(result), separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError):
        return None


def _members(operation_model: Any) -> frozenset[str]:
    shape = operation_model.output_shape
    return frozenset(shape.members) if shape is not None else frozenset()


def _without_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_none(v) for v in value]
    if isinstance(value, (str, int, float, bool)):
        return value
    raise TypeError(type(value).__name__)
