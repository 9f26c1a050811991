"""The gRPC server's gate: every call but health checks and reflection must present an API key
(`authorization: Bearer KEY` metadata) when keys are set, else it ends UNAUTHENTICATED before
reaching a servicer."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from osaurus.auth import ApiKeys, key_from_metadata
from osaurus.errors import Unauthenticated
from osaurus.services.grpc_errors import to_rpc_status

# Services anyone may call: load balancers probe health, and tools list methods by reflection.
OPEN_SERVICES = (
    "grpc.health.v1.Health",
    "grpc.reflection.v1alpha.ServerReflection",
    "grpc.reflection.v1.ServerReflection",
)


def _service(method: str) -> str:
    return method.lstrip("/").split("/")[0]


class ApiKeyInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self, keys: ApiKeys):
        self.keys = keys

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Any]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Any:
        details = handler_call_details
        handler = await continuation(details)
        if handler is None or not self.keys.enabled or _service(details.method) in OPEN_SERVICES:
            return handler
        presented = key_from_metadata(details.invocation_metadata or ())
        if self.keys.check(presented):
            return handler
        why = "invalid API key" if presented else "missing API key"
        return _refusing(handler, f"{why}: send the metadata authorization: Bearer KEY")


def _refusing(handler: grpc.RpcMethodHandler, message: str) -> grpc.RpcMethodHandler:
    """A handler of the same shape as `handler` that ends the call UNAUTHENTICATED."""
    status = to_rpc_status(Unauthenticated(message))

    async def refuse(request: Any, context: grpc.aio.ServicerContext) -> None:
        await context.abort_with_status(status)

    async def refuse_stream(request: Any, context: grpc.aio.ServicerContext) -> Any:
        await context.abort_with_status(status)
        yield  # pragma: no cover (a generator: abort raises first)

    serializers = {
        "request_deserializer": handler.request_deserializer,
        "response_serializer": handler.response_serializer,
    }
    if handler.unary_unary:
        return grpc.unary_unary_rpc_method_handler(refuse, **serializers)
    if handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler(refuse_stream, **serializers)
    if handler.stream_unary:
        return grpc.stream_unary_rpc_method_handler(refuse, **serializers)
    return grpc.stream_stream_rpc_method_handler(refuse_stream, **serializers)
