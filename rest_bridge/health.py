"""GET / (plain text) and GET /health (JSON): is the bridge up, and does the server answer."""

from __future__ import annotations

import html
from typing import Literal

import grpc
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from pydantic import BaseModel

from osaurus import __version__
from osaurus.v1 import system_pb2
from rest_bridge.grpc_client import clients

router = APIRouter()
HEALTH_TIMEOUT_SECONDS = 2.0


class Health(BaseModel):
    """200 when the gRPC server answers, 503 (status unavailable, with the error) when not."""

    status: Literal["ok", "unavailable"]
    version: str
    grpc_target: str
    grpc_reachable: bool
    loaded_models: list[str]
    server_version: str | None = None
    device: str | None = None
    error: str | None = None


@router.get("/", response_class=PlainTextResponse)
@router.head("/", response_class=PlainTextResponse, include_in_schema=False)  # Ollama's probe
async def root(request: Request) -> Response:
    """Plain text for clients and probes; a browser gets the same line with a link to /ui."""
    line = (
        f"osaurus {__version__} is running (OpenAI API at /v1, Ollama API at /api, "
        f"gRPC server at {clients(request).target}; dashboard at /ui)"
    )
    if "text/html" in request.headers.get("accept", ""):
        page = f"<!doctype html><title>osaurus</title><p>{html.escape(line)}</p>"
        return HTMLResponse(page + '<p><a href="/ui/">Open the dashboard</a></p>')
    return PlainTextResponse(line + "\n")


@router.get(
    "/health",
    response_model=None,
    responses={200: {"model": Health}, 503: {"model": Health, "description": "Server down"}},
)
async def health(request: Request) -> JSONResponse:
    c = clients(request)
    body: dict = {"status": "ok", "version": __version__, "grpc_target": c.target}
    try:
        status = await c.system.GetStatus(
            system_pb2.GetStatusRequest(), timeout=HEALTH_TIMEOUT_SECONDS
        )
    except grpc.aio.AioRpcError as exc:
        if exc.code() == grpc.StatusCode.UNAUTHENTICATED:  # up, and it has keys: no details
            body.update(grpc_reachable=True, loaded_models=[])
            return JSONResponse(body)
        body.update(
            status="unavailable",
            grpc_reachable=False,
            loaded_models=[],
            error=exc.details() or exc.code().name,
        )
        return JSONResponse(body, status_code=503)
    body.update(
        grpc_reachable=True,
        loaded_models=list(status.loaded_models),
        server_version=status.version,
        device=status.device,
    )
    return JSONResponse(body)
