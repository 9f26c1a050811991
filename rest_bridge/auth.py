"""API keys through the bridge: a client's key goes to the server with each of its calls.

The server alone holds and checks the keys (its gRPC interceptor). Before a request reaches a
route, `ApiKeyGate` asks the server whether the key the client sent (Authorization: Bearer, or
x-api-key) is accepted (SystemService.Authenticate, remembered for a while), so a refused
client gets 401 in its API family's error shape before anything else, validation included.
rest_bridge/forwarding.py then puts that key on every gRPC call the request makes (a context
variable carries it from the gate to the calls). The health check, the dashboard's files and the
OpenAPI document stay open, as the server's health and reflection do.
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Callable

import grpc
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from osaurus.v1 import system_pb2
from rest_bridge.errors import BridgeError, Render, from_grpc_error

API_KEY: contextvars.ContextVar[str | None] = contextvars.ContextVar("api_key", default=None)
OPEN_PATHS = ("/health", "/ui", "/openapi.json", "/docs", "/redoc")
REMEMBER_SECONDS = 30.0  # how long an accepted key is not asked about again
REMEMBER_AT_MOST = 1024  # keys remembered at once


def presented_key(request: Request) -> str | None:
    authorization = request.headers.get("authorization", "")
    if authorization.lower().startswith("bearer "):
        return authorization[7:].strip() or None
    return request.headers.get("x-api-key", "").strip() or None


def _open(path: str) -> bool:
    return path == "/" or any(path == p or path.startswith(p + "/") for p in OPEN_PATHS)


class ApiKeyGate:
    """ASGI middleware: refuses (401, in the family's shape) what the server would refuse."""

    def __init__(self, app: ASGIApp, render_for: Callable[[Request], Render]):
        self.app, self.render_for = app, render_for
        self._accepted: dict[str | None, float] = {}  # key -> until when

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] == "OPTIONS" or _open(scope["path"]):
            return await self.app(scope, receive, send)
        request = Request(scope)
        key = presented_key(request)
        token = API_KEY.set(key)
        try:
            refusal = await self._refusal(request, key)
            if refusal is not None:
                return await self.render_for(request)(refusal)(scope, receive, send)
            await self.app(scope, receive, send)
        finally:
            API_KEY.reset(token)

    async def _refusal(self, request: Request, key: str | None) -> BridgeError | None:
        if self._accepted.get(key, 0.0) > time.monotonic():
            return None
        try:
            await request.app.state.clients.system.Authenticate(system_pb2.AuthenticateRequest())
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.UNAUTHENTICATED:
                return from_grpc_error(exc)
            return None  # the server is down or busy: the route will say so
        now = time.monotonic()
        if len(self._accepted) >= REMEMBER_AT_MOST:  # keys off, clients sending anything
            self._accepted = {k: t for k, t in self._accepted.items() if t > now}
            if len(self._accepted) >= REMEMBER_AT_MOST:
                self._accepted.clear()
        self._accepted[key] = now + REMEMBER_SECONDS
        return None
