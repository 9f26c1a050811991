"""Errors in Ollama's shape, for the Ollama routes: {"error": "..."} with Ollama's status codes
(400 bad input, 404 unknown model, 500 and up for the server's troubles)."""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse

from rest_bridge.errors import BridgeError, error_route_class, plain_validation_error
from rest_bridge.ollama.response_models import OllamaError


def error_body(error: BridgeError) -> dict[str, Any]:
    return {"error": error.message}


def error_response(error: BridgeError) -> JSONResponse:
    return JSONResponse(error_body(error), status_code=error.status, headers=error.headers())


OllamaRoute = error_route_class(error_response, plain_validation_error, OllamaError)
