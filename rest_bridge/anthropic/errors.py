"""Errors in Anthropic's shape, for the Anthropic routes:
{"type": "error", "error": {"type", "message"}}, with Anthropic's status codes and types."""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse

from rest_bridge.anthropic.response_models import AnthropicError
from rest_bridge.errors import BridgeError, error_route_class, plain_validation_error

_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    503: "overloaded_error",
    529: "overloaded_error",
}


def error_type(status: int) -> str:
    return _TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")


def error_body(error: BridgeError) -> dict[str, Any]:
    return {"type": "error", "error": {"type": error_type(error.status), "message": error.message}}


def error_response(error: BridgeError) -> JSONResponse:
    return JSONResponse(error_body(error), status_code=error.status, headers=error.headers())


AnthropicRoute = error_route_class(error_response, plain_validation_error, AnthropicError)
