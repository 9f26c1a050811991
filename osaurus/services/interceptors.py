"""The gRPC server's gates, before any servicer, in this order: each call gets its request id;
while the server drains (SIGTERM) new calls end UNAVAILABLE; when API keys are set, a call
without one (`authorization: Bearer KEY` metadata) ends UNAUTHENTICATED, and a read-only key's
call to a method that changes the models held (ADMIN_METHODS) PERMISSION_DENIED; inference
calls past their key's requests a minute end RESOURCE_EXHAUSTED. Each gate decides before it
hands the call on, so a refused call never reaches (nor counts in) the next. Health checks and
reflection always pass. A request that does not decode ends INVALID_ARGUMENT."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from osaurus.auth import ApiKeys, Role, key_from_metadata
from osaurus.errors import (
    InvalidArgument,
    OsaurusError,
    PermissionDenied,
    RateLimited,
    Unauthenticated,
    Unavailable,
)
from osaurus.rate_limit import RateLimiter
from osaurus.request_id import HEADER, REQUEST_ID, chosen
from osaurus.services.grpc_errors import to_rpc_status
from osaurus.v1 import inference_pb2, model_pb2, session_pb2, system_pb2

INFERENCE_SERVICE = "osaurus.v1.InferenceService"
# Services anyone may call: load balancers probe health, and tools list methods by reflection.
OPEN_SERVICES = (
    "grpc.health.v1.Health",
    "grpc.reflection.v1alpha.ServerReflection",
    "grpc.reflection.v1.ServerReflection",
)


# What only an admin key may call: the methods that change which models the server holds.
ADMIN_METHODS = frozenset(
    f"/osaurus.v1.ModelService/{name}"
    for name in ("PullModel", "ImportModel", "CopyModel", "DeleteModel", "LoadModel", "UnloadModel")
)


def _service(method: str) -> str:
    return method.lstrip("/").split("/")[0]


# The contract's server-streaming methods, by path: a refusal must have the call's shape.
_STREAMING = {
    f"/{service.full_name}/{method.name}"
    for module in (inference_pb2, model_pb2, session_pb2, system_pb2)
    for service in module.DESCRIPTOR.services_by_name.values()
    for method in service.methods
    if method.server_streaming
}


def _refusal(method: str, error: OsaurusError) -> grpc.RpcMethodHandler:
    """A handler that ends the call `method` with `error`, without running anything else."""
    status = to_rpc_status(error)

    async def refuse(request: Any, context: grpc.aio.ServicerContext) -> None:
        await context.abort_with_status(status)

    async def refuse_stream(request: Any, context: grpc.aio.ServicerContext) -> Any:
        await context.abort_with_status(status)
        yield  # pragma: no cover (a generator: abort raises first)

    if method in _STREAMING:
        return grpc.unary_stream_rpc_method_handler(refuse_stream)
    return grpc.unary_unary_rpc_method_handler(refuse)


class ApiKeyInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self, keys: ApiKeys):
        self.keys = keys

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Any]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Any:
        details = handler_call_details
        if not self.keys.enabled or _service(details.method) in OPEN_SERVICES:
            return await continuation(details)
        presented = key_from_metadata(details.invocation_metadata or ())
        role = self.keys.role(presented)
        if role is Role.ADMIN or (role is Role.READ_ONLY and details.method not in ADMIN_METHODS):
            return await continuation(details)
        if role is Role.READ_ONLY:
            name = details.method.rsplit("/", 1)[-1]
            error: OsaurusError = PermissionDenied(
                f"this API key is read-only: {name} needs an admin key"
            )
        else:
            why = "invalid API key" if presented else "missing API key"
            error = Unauthenticated(f"{why}: send the metadata authorization: Bearer KEY")
        return _refusal(details.method, error)


class RateLimitInterceptor(grpc.aio.ServerInterceptor):
    """Generation, embedding and token counting (InferenceService) count against the caller's
    requests a minute; past it, RESOURCE_EXHAUSTED with when to retry."""

    def __init__(self, limiter: RateLimiter):
        self.limiter = limiter

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Any]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Any:
        details = handler_call_details
        if not self.limiter.enabled or _service(details.method) != INFERENCE_SERVICE:
            return await continuation(details)
        wait = self.limiter.take(key_from_metadata(details.invocation_metadata or ()) or "")
        if wait is None:
            return await continuation(details)
        limit = self.limiter.per_minute
        message = f"rate limit: {limit} requests a minute for this API key; retry in {wait:.0f} s"
        return _refusal(details.method, RateLimited(message, wait))


class RequestIdInterceptor(grpc.aio.ServerInterceptor):
    """Each call runs under its request id (the client's x-request-id metadata, or a new one):
    every log line of it names the id, and the call's trailing metadata gives it back."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Any]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Any:
        given = dict(handler_call_details.invocation_metadata or ()).get(HEADER)
        request_id = chosen(given if isinstance(given, str) else None)
        REQUEST_ID.set(request_id)  # the call's own task and context: nothing to reset
        handler = await continuation(handler_call_details)
        return None if handler is None else _telling_id(handler, request_id)


class _Undecodable:
    """What a request that is not a valid message decodes to: the call then ends
    INVALID_ARGUMENT, where grpc would answer INTERNAL ("Exception deserializing request")."""

    def __init__(self, error: Exception):
        self.error = error


def _tolerant(deserialize: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    if deserialize is None:
        return None

    def decode(data: bytes) -> Any:
        try:
            return deserialize(data)
        except Exception as exc:  # protobuf's DecodeError, or a deserializer's own
            return _Undecodable(exc)

    return decode


async def _refuse_undecodable(request: Any, context: grpc.aio.ServicerContext) -> None:
    if isinstance(request, _Undecodable):
        error = InvalidArgument(
            f"the request is not a valid message of this method: {request.error}"
        )
        await context.abort_with_status(to_rpc_status(error))


def _telling_id(handler: grpc.RpcMethodHandler, request_id: str) -> grpc.RpcMethodHandler:
    """`handler`, with the request id set in its trailing metadata before it runs, and a request
    that does not decode refused as INVALID_ARGUMENT."""
    trailing = ((HEADER, request_id),)
    serializers = {
        "request_deserializer": _tolerant(handler.request_deserializer),
        "response_serializer": handler.response_serializer,
    }
    if handler.unary_unary:
        behaviour: Any = handler.unary_unary  # async here: grpc.aio's servicers

        async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
            context.set_trailing_metadata(trailing)
            await _refuse_undecodable(request, context)
            return await behaviour(request, context)

        return grpc.unary_unary_rpc_method_handler(unary, **serializers)
    if handler.unary_stream:
        streaming: Any = handler.unary_stream

        async def stream(request: Any, context: grpc.aio.ServicerContext) -> Any:
            context.set_trailing_metadata(trailing)
            await _refuse_undecodable(request, context)
            async for item in streaming(request, context):
                yield item

        return grpc.unary_stream_rpc_method_handler(stream, **serializers)
    return handler  # client streaming: the contract has none


class Draining:
    """Set once the server stops taking new work (the first SIGTERM or SIGINT)."""

    def __init__(self) -> None:
        self.on = False


class DrainInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self, draining: Draining):
        self.draining = draining

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Any]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Any:
        details = handler_call_details
        if not self.draining.on or _service(details.method) in OPEN_SERVICES:
            return await continuation(details)
        return _refusal(details.method, Unavailable("osaurus is shutting down: no new requests"))
