"""GET /metrics: the server's Prometheus metrics (SystemService.GetMetrics) and the bridge's own
HTTP metrics, in one text exposition for one scrape.

The bridge counts each request by route (its template, e.g. /v1/models/{model_id}), method and
status, and times it to the end of its body (a stream's last byte), in a registry of its own.
"""

from __future__ import annotations

import time

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram
from prometheus_client import generate_latest as exposition
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from osaurus.v1 import system_pb2
from rest_bridge.grpc_client import clients

REGISTRY = CollectorRegistry()
HTTP_REQUESTS = Counter(
    "osaurus_http_requests",
    "REST requests answered, by route, method and status (vllm: the API server's "
    "http_requests_total)",
    ["route", "method", "status"],
    registry=REGISTRY,
)
HTTP_DURATION = Histogram(
    "osaurus_http_request_duration_seconds",
    "From a REST request to the last byte of its answer, streams included, by route",
    ["route"],
    buckets=(0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
    registry=REGISTRY,
)

router = APIRouter()


@router.get(
    "/metrics",
    response_class=PlainTextResponse,
    responses={200: {"description": "Prometheus text format"}},
)
async def metrics(request: Request) -> PlainTextResponse:
    server = await clients(request).system.GetMetrics(system_pb2.GetMetricsRequest())
    text = server.text + exposition(REGISTRY).decode()
    return PlainTextResponse(text, media_type=CONTENT_TYPE_LATEST)


class HttpMetrics:
    """ASGI middleware: one count and one duration per HTTP request, once it is answered."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start, status = time.perf_counter(), 500

        async def watch(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, watch)
        finally:
            route = scope.get("route")
            name = getattr(route, "path", None) or "unmatched"
            HTTP_REQUESTS.labels(name, scope["method"], str(status)).inc()
            HTTP_DURATION.labels(name).observe(time.perf_counter() - start)
