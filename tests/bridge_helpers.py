"""The bridge app in-process (ASGI) over a real grpc.aio server holding a given servicer."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc
import httpx
from fastapi import FastAPI

from osaurus.client import Stubs, open_aio_channel
from osaurus.v1 import inference_pb2_grpc
from rest_bridge.app import create_app


@dataclass
class InProcessBridge:
    http: httpx.AsyncClient  # base URL http://bridge
    transport: httpx.ASGITransport  # for other clients (openai's, ollama's) of the same app
    app: FastAPI  # for clients on another HTTP library (anthropic's: httpx2)


@contextlib.asynccontextmanager
async def bridge_over(
    inference: inference_pb2_grpc.InferenceServiceServicer,
) -> AsyncIterator[InProcessBridge]:
    """The bridge app in-process, whose gRPC server answers with `inference`."""
    server = grpc.aio.server()
    inference_pb2_grpc.add_InferenceServiceServicer_to_server(inference, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    target = f"127.0.0.1:{port}"
    app = create_app(target)
    channel = open_aio_channel(target)
    app.state.clients = Stubs.over(target, channel)  # what the lifespan does
    app.state.target = target
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://bridge") as client:
            yield InProcessBridge(client, transport, app)
    finally:
        await channel.close()
        await server.stop(0)
