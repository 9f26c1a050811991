"""What every API family shares about errors: one error type, the gRPC -> HTTP status table, and
a route class that answers a family's routes in that family's error shape.

Each family (openai/, and later ollama/, anthropic/) says how a `BridgeError` looks on the wire
and how to read a request-validation failure; `error_route_class` ties both to its routes. So
`/v1/chat/completions` and `/v1/messages` can share the `/v1` prefix and still answer in their
own shapes, which app-wide exception handlers could not do.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from typing import Any

import grpc
from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from pydantic import BaseModel
from starlette.exceptions import HTTPException

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
# A busy server (429) says when to come back; the openai client waits that long.
RETRY_AFTER_SECONDS = 1


class BridgeError(Exception):
    """An error to answer a client with, in no API's shape yet.

    `field` is the request field at fault: the contract's path (`sampling.top_p`) when the server
    found it, the API's own name when the bridge did. `reason` is machine-readable, upper snake
    case (`MODEL_NOT_FOUND`), as in the server's google.rpc.ErrorInfo.
    """

    def __init__(
        self,
        message: str,
        status: int = 400,
        *,
        field: str | None = None,
        reason: str | None = None,
        retry_after: str | None = None,
    ):
        super().__init__(message)
        self.message, self.status, self.field, self.reason = message, status, field, reason
        self.retry_after = retry_after  # seconds, as the server said (rate limits)

    def headers(self) -> dict[str, str] | None:
        if self.status != 429:
            return None
        return {"Retry-After": self.retry_after or str(RETRY_AFTER_SECONDS)}


def from_grpc_error(error: grpc.aio.AioRpcError, target: str = "") -> BridgeError:
    code = error.code()
    message = error.details() or code.name
    field, reason, retry_after = None, None, None
    rich = rpc_status.from_call(error)  # type: ignore[arg-type]  # an aio error is a Call too
    if rich is not None:
        for detail in rich.details:
            info = error_details_pb2.ErrorInfo()
            if detail.Unpack(info):
                reason = info.reason
                field = info.metadata.get("field")
                retry_after = info.metadata.get("retry_after_seconds")
    if code == grpc.StatusCode.UNAVAILABLE and rich is None:
        where = f" at {target}" if target else ""
        message = f"the osaurus gRPC server{where} is unavailable: {message}"
    status = HTTP_STATUS.get(code, 500)
    return BridgeError(
        message, status, field=field, reason=reason or code.name, retry_after=retry_after
    )


def unexpected_error(exc: Exception) -> BridgeError:
    log.exception("unexpected error in the bridge")
    return BridgeError(f"internal error in the REST bridge: {type(exc).__name__}: {exc}", 500)


def grpc_target(request: Request) -> str:
    return getattr(request.app.state, "target", "")


def _field(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in (loc[1:] if loc and loc[0] == "body" else loc)]
    return ".".join(p for p in parts if not p.startswith(("str", "list[", "dict[", "int")))


def plain_validation_error(exc: RequestValidationError) -> BridgeError:
    """A validation failure in plain words, for families whose errors carry only a message
    (Ollama, Anthropic): the field's path and what is wrong with it."""
    errors = exc.errors()
    first: dict[str, Any] = errors[0] if errors else {"msg": "invalid request", "loc": ()}
    if first.get("type") == "json_invalid":
        return BridgeError(f"invalid JSON in the request body: {first.get('ctx', {}).get('error')}")
    if first.get("type") in {"model_attributes_type", "model_type", "dict_type"}:
        return BridgeError("the request body must be a JSON object")
    field = _field(tuple(first.get("loc", ())))
    if first.get("type") == "missing":
        return BridgeError(f"{field} is required", field=field)
    got = f" (got {first['input']!r:.200})" if "input" in first else ""
    return BridgeError(f"invalid {field}: {first.get('msg', 'invalid value')}{got}", field=field)


Render = Callable[[BridgeError], Response]
ReadValidation = Callable[[RequestValidationError], BridgeError]


def error_route_class(
    render: Render, read_validation: ReadValidation, error_model: type[BaseModel]
) -> type[APIRoute]:
    """An APIRoute whose handler answers every failure of its route with `render`: the
    family's own validation reading, a BridgeError a route raised, a gRPC status, a bug.
    /openapi.json says so: 4XX and 5XX answers are `error_model` (not FastAPI's 422)."""

    class FamilyRoute(APIRoute):
        def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
            responses = dict(kwargs.pop("responses", None) or {})
            for status, meaning in (("4XX", "Bad request"), ("5XX", "Server trouble")):
                responses.setdefault(status, {"model": error_model, "description": meaning})
            super().__init__(path, endpoint, responses=responses, **kwargs)

        def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
            handle = super().get_route_handler()

            async def handle_in_family_shape(request: Request) -> Response:
                try:
                    return await handle(request)
                except RequestValidationError as exc:
                    return render(read_validation(exc))
                except BridgeError as exc:
                    return render(exc)
                except grpc.aio.AioRpcError as exc:
                    return render(from_grpc_error(exc, grpc_target(request)))
                except HTTPException:
                    raise  # routing's own answers (404, 405): the app's handler shapes them
                except Exception as exc:
                    return render(unexpected_error(exc))

            return handle_in_family_shape

    return FamilyRoute
