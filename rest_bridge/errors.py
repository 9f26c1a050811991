"""Errors in OpenAI's JSON shape: from gRPC statuses, from request validation, from routing.

Body: {"error": {"message", "type", "param", "code"}}, as OpenAI sends it.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

import grpc
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger(__name__)

HTTP_STATUS = {
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.INTERNAL: 500,
    grpc.StatusCode.UNKNOWN: 500,
    grpc.StatusCode.DATA_LOSS: 500,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
}


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


RETRY_AFTER_SECONDS = 1


def error_body(
    message: str, status: int, param: str | None = None, code: str | None = None
) -> dict:
    return {"error": {"message": message, "type": error_type(status), "param": param, "code": code}}


class OpenAIError(Exception):
    """Raised by routes for errors the bridge finds itself."""

    def __init__(
        self, message: str, status: int = 400, param: str | None = None, code: str | None = None
    ):
        super().__init__(message)
        self.message, self.status, self.param, self.code = message, status, param, code

    def body(self) -> dict:
        return error_body(self.message, self.status, self.param, self.code)

    def response(self) -> JSONResponse:
        # A busy server (429) says when to come back; the openai client waits that long.
        headers = {"Retry-After": str(RETRY_AFTER_SECONDS)} if self.status == 429 else None
        return JSONResponse(self.body(), status_code=self.status, headers=headers)


def _openai_param(grpc_field: str) -> str:
    """gRPC field paths -> the OpenAI request's names (sampling.temperature -> temperature)."""
    for prefix in ("sampling.", "chat."):
        if grpc_field.startswith(prefix):
            return grpc_field[len(prefix) :]
    return grpc_field


def from_grpc_error(error: grpc.aio.AioRpcError, target: str = "") -> OpenAIError:
    code = error.code()
    status = HTTP_STATUS.get(code, 500)
    message = error.details() or code.name
    param, reason = None, None
    rich = rpc_status.from_call(error)
    if rich is not None:
        for detail in rich.details:
            info = error_details_pb2.ErrorInfo()
            if detail.Unpack(info):
                reason = info.reason.lower()
                param = _openai_param(info.metadata["field"]) if "field" in info.metadata else None
    if code == grpc.StatusCode.UNAVAILABLE and rich is None:
        message = (
            f"the osaurus gRPC server{f' at {target}' if target else ''} is unavailable: {message}"
        )
    return OpenAIError(message, status, param, reason or code.name.lower())


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


def validation_error(exc: RequestValidationError) -> OpenAIError:
    errors = exc.errors()
    first = errors[0] if errors else {"msg": "invalid request", "loc": ()}
    if first.get("type") == "json_invalid":
        return OpenAIError(
            "We could not parse the JSON body of your request: "
            + str(first.get("ctx", {}).get("error", "")),
            400,
        )
    if first.get("type") == "model_attributes_type" or first.get("loc") == ("body",):
        return OpenAIError("the request body must be a JSON object", 400)
    param = _loc_to_param(tuple(first.get("loc", ())))
    message = first.get("msg", "invalid value")
    if "input" in first and first.get("type") not in {"missing"}:
        message = f"{message} (got {json.dumps(first['input'], default=str)[:200]})"
    if param:
        message = f"Invalid '{param}': {message}"
    return OpenAIError(
        message,
        400,
        param,
        "invalid_value" if first.get("type") != "missing" else "missing_required_parameter",
    )


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(OpenAIError)
    async def _openai(_: Request, exc: OpenAIError) -> JSONResponse:
        return exc.response()

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        err = validation_error(exc)
        return JSONResponse(err.body(), status_code=err.status)

    @app.exception_handler(grpc.aio.AioRpcError)
    async def _grpc(request: Request, exc: grpc.aio.AioRpcError) -> JSONResponse:
        return from_grpc_error(exc, getattr(request.app.state, "target", "")).response()

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error in the bridge")
        body = error_body(f"internal error in the REST bridge: {type(exc).__name__}: {exc}", 500)
        return JSONResponse(body, status_code=500)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = exc.detail if isinstance(exc.detail, str) else "request failed"
        if exc.status_code == 404:
            message = "Unknown request URL. See the osaurus README for the supported endpoints."
        return JSONResponse(error_body(message, exc.status_code), status_code=exc.status_code)
