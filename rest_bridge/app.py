"""The FastAPI app factory: one router per API family over one gRPC channel to the server
(`target`). The app holds no model and no engine."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import Response
from starlette.exceptions import HTTPException

from osaurus import __version__
from osaurus.client import Stubs, Tls, open_aio_channel
from rest_bridge import health, metrics
from rest_bridge.anthropic import errors as anthropic_errors
from rest_bridge.anthropic import routes as anthropic_routes
from rest_bridge.auth import ApiKeyGate
from rest_bridge.errors import BridgeError, Render, unexpected_error
from rest_bridge.forwarding import RequestIdMiddleware, forward_to_server
from rest_bridge.limits import BodyLimit
from rest_bridge.manage import routes as manage_routes
from rest_bridge.metrics import HttpMetrics
from rest_bridge.ollama import errors as ollama_errors
from rest_bridge.ollama import routes as ollama_routes
from rest_bridge.openai import errors as openai_errors
from rest_bridge.openai import responses_routes as openai_responses
from rest_bridge.openai import routes as openai_routes
from rest_bridge.openapi import openapi_document
from rest_bridge.ui import mount_dashboard

DEFAULT_MAX_REQUEST_BYTES = 64 << 20  # the gRPC server's message limit


def create_app(
    target: str,
    cors_origins: tuple[str, ...] = (),
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
    tls: Tls | None = None,
) -> FastAPI:
    """`cors_origins`: the origins a browser page may call from (FastAPI's CORSMiddleware
    answers their preflights); none, the default, is same-origin only. A request body over
    `max_request_bytes` is refused (413). `tls`: reach the server over TLS."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        channel = open_aio_channel(target, forward_to_server(), tls)
        app.state.clients = Stubs.over(target, channel)
        app.state.target = target
        try:
            yield
        finally:
            await channel.close()

    app = FastAPI(title="osaurus", version=__version__, lifespan=lifespan)
    # Each added one wraps those before it: CORS, request id, metrics, body limit, API keys.
    app.add_middleware(ApiKeyGate, render_for=_family_shape)  # inside CORS: preflights pass
    app.add_middleware(BodyLimit, max_bytes=max_request_bytes, render_for=_family_shape)
    app.add_middleware(HttpMetrics)  # outside the gate: refusals are counted too
    app.add_middleware(RequestIdMiddleware)  # every answer, refusals included, has its id
    if cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(cors_origins),
            allow_methods=["*"],
            allow_headers=["*"],
            expose_headers=["Retry-After", "x-request-id"],
        )
    _install_fallback_handlers(app)
    app.include_router(health.router)
    app.include_router(metrics.router)
    app.include_router(openai_routes.router)
    app.include_router(openai_responses.router)
    app.include_router(ollama_routes.router)
    app.include_router(anthropic_routes.router)
    app.include_router(manage_routes.router)
    mount_dashboard(app)
    app.openapi = lambda: openapi_document(app)  # type: ignore[method-assign]
    return app


def _family_shape(request: Request) -> Render:
    """The error shape of the API family a URL belongs to: Ollama's under /api, Anthropic's
    under /v1/messages, else OpenAI's (the API most clients of the bridge speak)."""
    path = request.url.path
    if path.startswith("/api/"):
        return ollama_errors.error_response
    if path == "/v1/messages" or path.startswith("/v1/messages/"):
        return anthropic_errors.error_response
    return openai_errors.error_response


def _install_fallback_handlers(app: FastAPI) -> None:
    """Answers for what no family's route handles (an unknown URL, a wrong method), in the
    shape of the family the URL belongs to."""

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> Response:
        message = exc.detail if isinstance(exc.detail, str) else "request failed"
        if exc.status_code == 404:
            message = "Unknown request URL. See the osaurus README for the supported endpoints."
        return _family_shape(request)(BridgeError(message, exc.status_code))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        return _family_shape(request)(unexpected_error(exc))
