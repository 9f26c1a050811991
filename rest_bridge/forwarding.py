"""What the bridge passes on to the server with each gRPC call a REST request makes: the
client's API key (see auth.py) and the request's id, which this module's middleware takes from
the client's x-request-id header (or makes) and gives back as the response's header. Context
variables carry both from the request to its calls."""

from __future__ import annotations

from typing import Any

import grpc
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from osaurus.client import key_metadata
from osaurus.request_id import HEADER, REQUEST_ID, chosen
from rest_bridge.auth import API_KEY


class RequestIdMiddleware:
    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        given = dict(scope["headers"]).get(HEADER.encode())
        request_id = chosen(given.decode("latin-1") if given else None)
        token = REQUEST_ID.set(request_id)

        async def tell(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [h for h in message.get("headers", []) if h[0] != HEADER.encode()]
                message["headers"] = [*headers, (HEADER.encode(), request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, tell)
        finally:
            REQUEST_ID.reset(token)


def _with_context(details: Any) -> Any:
    metadata = grpc.aio.Metadata(*(details.metadata or ()))
    metadata.add(HEADER, REQUEST_ID.get())
    key = API_KEY.get()
    if key is not None:
        metadata.add(*key_metadata(key))
    return details._replace(metadata=metadata)


class _ToUnary(grpc.aio.UnaryUnaryClientInterceptor):
    async def intercept_unary_unary(
        self, continuation: Any, client_call_details: Any, request: Any
    ):
        return await continuation(_with_context(client_call_details), request)


class _ToStream(grpc.aio.UnaryStreamClientInterceptor):
    async def intercept_unary_stream(
        self, continuation: Any, client_call_details: Any, request: Any
    ):
        return await continuation(_with_context(client_call_details), request)


def forward_to_server() -> list[grpc.aio.ClientInterceptor]:
    """Interceptors that add the request's id and API key to each gRPC call of the bridge.
    Two: a grpc.aio channel files an interceptor under one call kind only."""
    return [_ToUnary(), _ToStream()]
