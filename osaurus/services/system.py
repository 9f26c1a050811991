"""SystemService: server status and a live stream of machine statistics."""

from __future__ import annotations

import asyncio
import time

import grpc

from osaurus import __version__
from osaurus.auth import ApiKeys, key_from_metadata
from osaurus.engine.blas import blas_in_use
from osaurus.engine.engine import Engine
from osaurus.engine.native import status as kernel_status
from osaurus.errors import InvalidArgument
from osaurus.services.grpc_errors import maps_errors
from osaurus.system import SystemMonitor
from osaurus.v1 import system_pb2 as pb
from osaurus.v1 import system_pb2_grpc

MIN_INTERVAL_SECONDS = 0.1
DEFAULT_INTERVAL_SECONDS = 1.0


class SystemServicer(system_pb2_grpc.SystemServiceServicer):
    def __init__(self, engine: Engine, device: str, mlx_version: str, keys: ApiKeys | None = None):
        self.engine = engine
        self.keys = keys or ApiKeys()
        self.device = device
        self.mlx_version = mlx_version
        self.started = time.monotonic()

    @maps_errors
    async def GetStatus(self, request: pb.GetStatusRequest, context: grpc.aio.ServicerContext):
        running, queued = await self.engine.request_counts()
        return pb.GetStatusResponse(
            version=__version__,
            uptime_seconds=time.monotonic() - self.started,
            loaded_models=self.engine.loaded_ids(),
            device=self.device,
            mlx_version=self.mlx_version,
            models_dir=str(self.engine.registry.models_dir),
            blas=blas_in_use(),
            active_requests=await self.engine.active_requests(),
            request_limit=self.engine.request_limit,
            kv_cache_bytes=await self.engine.kv_cache_bytes(),
            kv_cache_budget_bytes=self.engine.kv_store.budget_bytes,
            cpu_kernel=kernel_status().describe() if self.device == "cpu" else "",
            running_requests=running,
            queued_requests=queued,
            generated_tokens=self.engine.generated_tokens,
        )

    @maps_errors
    async def Authenticate(
        self, request: pb.AuthenticateRequest, context: grpc.aio.ServicerContext
    ) -> pb.AuthenticateResponse:
        # Reached only past the interceptor, so the key (if any is needed) was good.
        role = self.keys.role(key_from_metadata(context.invocation_metadata() or ()))
        return pb.AuthenticateResponse(
            keys_required=self.keys.enabled, role=role.value if role else ""
        )

    @maps_errors
    async def GetMetrics(
        self, request: pb.GetMetricsRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetMetricsResponse:
        metrics, engine = self.engine.metrics, self.engine
        running, queued = await engine.request_counts()
        metrics.running.set(running)
        metrics.waiting.set(queued)
        metrics.kv_cache_bytes.set(await engine.kv_cache_bytes())
        metrics.kv_cache_budget_bytes.set(engine.kv_store.budget_bytes)
        residencies = ((m, engine.residency(m)) for m in engine.loaded_ids())
        metrics.set_loaded((m, r[0]) for m, r in residencies if r is not None)
        return pb.GetMetricsResponse(text=metrics.text())

    @maps_errors
    async def WatchSystemStats(
        self, request: pb.WatchSystemStatsRequest, context: grpc.aio.ServicerContext
    ):
        interval = request.interval_seconds or DEFAULT_INTERVAL_SECONDS
        if interval < MIN_INTERVAL_SECONDS:
            raise InvalidArgument(
                f"interval_seconds must be at least {MIN_INTERVAL_SECONDS}",
                field="interval_seconds",
            )
        monitor = SystemMonitor()
        tokens, at = self.engine.generated_tokens, time.monotonic()
        while True:
            await asyncio.sleep(interval)
            s = monitor.sample()
            running, queued = await self.engine.request_counts()
            now_tokens, now = self.engine.generated_tokens, time.monotonic()
            yield pb.WatchSystemStatsResponse(
                cpu_percent=s.cpu_percent,
                memory_used_bytes=s.memory_used_bytes,
                memory_total_bytes=s.memory_total_bytes,
                process_rss_bytes=s.process_rss_bytes,
                timestamp=s.timestamp,
                running_requests=running,
                queued_requests=queued,
                generated_tokens=now_tokens,
                tokens_per_second=(now_tokens - tokens) / max(now - at, 1e-9),
            )
            tokens, at = now_tokens, now
