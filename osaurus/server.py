"""Build and run the grpc.aio server: our four services, standard health and reflection."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from osaurus.auth import ApiKeys
from osaurus.engine.engine import Engine
from osaurus.engine.native import mlx_version
from osaurus.rate_limit import RateLimiter
from osaurus.services.inference import InferenceServicer
from osaurus.services.interceptors import (
    ApiKeyInterceptor,
    Draining,
    DrainInterceptor,
    RateLimitInterceptor,
    RequestIdInterceptor,
)
from osaurus.services.models import ModelServicer
from osaurus.services.sessions import SessionServicer
from osaurus.services.system import SystemServicer
from osaurus.v1 import (
    inference_pb2,
    inference_pb2_grpc,
    model_pb2,
    model_pb2_grpc,
    session_pb2,
    session_pb2_grpc,
    system_pb2,
    system_pb2_grpc,
)

log = logging.getLogger(__name__)

SERVICE_NAMES = (
    inference_pb2.DESCRIPTOR.services_by_name["InferenceService"].full_name,
    model_pb2.DESCRIPTOR.services_by_name["ModelService"].full_name,
    session_pb2.DESCRIPTOR.services_by_name["SessionService"].full_name,
    system_pb2.DESCRIPTOR.services_by_name["SystemService"].full_name,
)

_OPTIONS = [
    # Chats can be long; the default 4 MB receive limit is too small for a big context.
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
    ("grpc.max_send_message_length", 64 * 1024 * 1024),
    # gRPC sets SO_REUSEPORT by default: a second server on a busy port would silently share it.
    ("grpc.so_reuseport", 0),
]


@dataclass
class RunningServer:
    server: grpc.aio.Server
    port: int
    health: health.aio.HealthServicer
    draining: Draining
    engine: Engine

    async def drain(self, timeout: float) -> bool:
        """Take no new requests (health NOT_SERVING, new calls UNAVAILABLE) and wait up to
        `timeout` seconds for those in flight to end; False if some were still running."""
        self.draining.on = True
        await self.health.enter_graceful_shutdown()
        deadline = asyncio.get_running_loop().time() + timeout
        while self.engine.in_flight and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.05)
        return not self.engine.in_flight

    async def stop(self, grace: float = 2.0) -> None:
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace)


def _mlx_identity() -> tuple[str, str]:
    import mlx.core as mx

    return mx.default_device().type.name, mlx_version()


async def start_grpc_server(
    engine: Engine,
    host: str,
    port: int,
    keys: ApiKeys | None = None,
    limiter: RateLimiter | None = None,
    tls: tuple[bytes, bytes] | None = None,
) -> RunningServer:
    """Start serving on host:port (port 0 picks a free one) and report SERVING when ready.
    With `keys` that are set, every call but health and reflection needs one of them; with a
    `limiter`, inference calls count against their key's requests a minute. `tls`: the
    (private key, certificate chain) to serve TLS with, PEM."""
    keys, draining = keys or ApiKeys(), Draining()
    interceptors = [
        RequestIdInterceptor(),
        DrainInterceptor(draining),
        ApiKeyInterceptor(keys),
        RateLimitInterceptor(limiter or RateLimiter(0)),
    ]
    server = grpc.aio.server(options=_OPTIONS, interceptors=interceptors)
    device, mlx_version = _mlx_identity()
    inference_pb2_grpc.add_InferenceServiceServicer_to_server(InferenceServicer(engine), server)
    model_pb2_grpc.add_ModelServiceServicer_to_server(ModelServicer(engine), server)
    session_pb2_grpc.add_SessionServiceServicer_to_server(SessionServicer(engine), server)
    system_pb2_grpc.add_SystemServiceServicer_to_server(
        SystemServicer(engine, device, mlx_version, keys), server
    )
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (*SERVICE_NAMES, health.SERVICE_NAME, reflection.SERVICE_NAME), server
    )
    try:
        address = f"{host}:{port}"
        if tls is not None:
            bound = server.add_secure_port(address, grpc.ssl_server_credentials([tls]))
        else:
            bound = server.add_insecure_port(address)
    except RuntimeError:
        bound = 0
    if bound == 0:
        raise OSError(f"cannot listen for gRPC on {host}:{port} (address in use?)")
    await server.start()
    for name in ("", *SERVICE_NAMES):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    log.info("gRPC server listening on %s:%d", host, bound)
    return RunningServer(
        server=server, port=bound, health=health_servicer, draining=draining, engine=engine
    )
