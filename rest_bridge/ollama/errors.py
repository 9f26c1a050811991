"""Errors in Ollama's shape, for the Ollama routes: {"error": "..."} with Ollama's status codes
(400 bad input, 404 unknown model, 500 and up for the server's troubles)."""

from __future__ import annotations

from typing import Any

from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from rest_bridge.errors import BridgeError, error_route_class


def error_body(error: BridgeError) -> dict[str, Any]:
    return {"error": error.message}


def error_response(error: BridgeError) -> JSONResponse:
    return JSONResponse(error_body(error), status_code=error.status, headers=error.headers())


def _field(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in (loc[1:] if loc and loc[0] == "body" else loc)]
    return ".".join(p for p in parts if not p.startswith(("str", "list[", "dict[", "int")))


def validation_error(exc: RequestValidationError) -> BridgeError:
    errors = exc.errors()
    first: dict[str, Any] = errors[0] if errors else {"msg": "invalid request", "loc": ()}
    if first.get("type") == "json_invalid":
        return BridgeError(f"invalid JSON in the request body: {first.get('ctx', {}).get('error')}")
    if first.get("type") == "model_attributes_type" or first.get("loc") == ("body",):
        return BridgeError("the request body must be a JSON object")
    field = _field(tuple(first.get("loc", ())))
    if first.get("type") == "missing":
        return BridgeError(f"{field} is required", field=field)
    got = f" (got {first['input']!r:.200})" if "input" in first else ""
    return BridgeError(f"invalid {field}: {first.get('msg', 'invalid value')}{got}", field=field)


OllamaRoute = error_route_class(error_response, validation_error)
