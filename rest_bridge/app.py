"""The FastAPI app factory. The app talks to an osaurus server only over gRPC (`target`)."""

from __future__ import annotations

from contextlib import asynccontextmanager

from fastapi import FastAPI

from osaurus import __version__
from rest_bridge.errors import install_error_handlers
from rest_bridge.grpc_client import GrpcClients
from rest_bridge.routes import chat, health, models


def create_app(target: str) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI):
        app.state.clients = GrpcClients.connect(target)
        app.state.target = target
        try:
            yield
        finally:
            await app.state.clients.close()

    app = FastAPI(title="osaurus", version=__version__, lifespan=lifespan)
    install_error_handlers(app)
    for module in (health, models, chat):
        app.include_router(module.router)
    return app
