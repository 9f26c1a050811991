"""Errors in OpenAI's JSON shape, for the OpenAI routes: {"error": {"message", "type", "param",
"code"}}, as OpenAI sends it, with its HTTP status."""

from __future__ import annotations

import json
import re
from typing import Any

from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from rest_bridge.errors import BridgeError, error_route_class
from rest_bridge.openai.response_models import ErrorResponse


def error_type(status: int) -> str:
    if status == 401:
        return "authentication_error"
    if status == 403:
        return "permission_error"
    if status == 429:
        return "rate_limit_error"
    if status >= 500:
        return "server_error"
    return "invalid_request_error"


def openai_param(field: str | None) -> str | None:
    """The contract's field paths -> the OpenAI request's names (sampling.temperature ->
    temperature, chat.messages[0].role -> messages[0].role); OpenAI names pass through."""
    if field is None:
        return None
    for prefix in ("sampling.", "chat."):
        if field.startswith(prefix):
            return field[len(prefix) :]
    return field


def error_body(error: BridgeError) -> dict[str, Any]:
    return {
        "error": {
            "message": error.message,
            "type": error_type(error.status),
            "param": openai_param(error.field),
            "code": error.reason.lower() if error.reason else None,
        }
    }


def error_response(error: BridgeError) -> JSONResponse:
    return JSONResponse(error_body(error), status_code=error.status, headers=error.headers())


# pydantic names the union branch it tried at the end of an error's loc ("str", "list[TextPart]").
_UNION_TAG = re.compile(r"^(str|int|float|bool|none)$|[\[(]")


def _loc_to_param(loc: tuple[Any, ...]) -> str | None:
    """("body", "messages", 0, "role") -> "messages[0].role", as OpenAI names params."""
    param = ""
    for part in loc[1:] if loc and loc[0] == "body" else loc:
        if isinstance(part, int):
            param += f"[{part}]"
        elif _UNION_TAG.search(str(part)):
            break
        else:
            param += f".{part}" if param else str(part)
    return param or None


# What pydantic says when the body is a list, a string...: no field to name.
_NOT_AN_OBJECT = {"model_attributes_type", "model_type", "dict_type"}


def validation_error(exc: RequestValidationError) -> BridgeError:
    errors = exc.errors()
    first: dict[str, Any] = errors[0] if errors else {"msg": "invalid request", "loc": ()}
    if first.get("type") == "json_invalid":
        detail = str(first.get("ctx", {}).get("error", ""))
        return BridgeError(f"We could not parse the JSON body of your request: {detail}")
    if first.get("type") in _NOT_AN_OBJECT:
        return BridgeError("the request body must be a JSON object")
    param = _loc_to_param(tuple(first.get("loc", ())))
    message = first.get("msg", "invalid value")
    if "input" in first and first.get("type") not in {"missing"}:
        message = f"{message} (got {json.dumps(first['input'], default=str)[:200]})"
    if param:
        message = f"Invalid '{param}': {message}"
    missing = first.get("type") == "missing"
    reason = "MISSING_REQUIRED_PARAMETER" if missing else "INVALID_VALUE"
    return BridgeError(message, 400, field=param, reason=reason)


OpenAIRoute = error_route_class(error_response, validation_error, ErrorResponse)
