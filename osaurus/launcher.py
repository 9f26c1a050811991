"""Build and run the whole server: engine, gRPC server and REST bridge, in one process (`serve`),
or the bridge alone pointed at a server (`bridge`). The only module of the core that imports
rest_bridge; the CLI parses arguments and calls it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any

import uvicorn

from osaurus import __version__
from osaurus.auth import ApiKeys
from osaurus.client import Tls
from osaurus.config import BridgeSettings, Settings
from osaurus.errors import OsaurusError
from osaurus.models.registry import ModelRegistry
from osaurus.models.staging import remove_abandoned
from osaurus.rate_limit import RateLimiter

log = logging.getLogger("osaurus")
HTTP_SHUTDOWN_SECONDS = 3


def serve(settings: Settings) -> None:
    from osaurus.engine.blas import preload_blas

    # Before anything imports mlx: MLX binds its BLAS at load time.
    blas = preload_blas(settings.use_openblas)
    if blas:
        log.info("using OpenBLAS at %s", blas)
    import mlx.core as mx

    from osaurus.engine.native import status as kernel_status

    # On the CPU, say once which kernel multiplies quantized weights (status() itself warns
    # when it is MLX's slow one, and why).
    if mx.default_device() == mx.cpu and kernel_status().available:
        log.info("quantized matmul on the CPU: %s", kernel_status().describe())

    from osaurus.models.default_model import ensure_default_embedding_model, ensure_default_model

    remove_abandoned(settings.models_dir)  # what a killed server was writing
    registry = ModelRegistry(settings.models_dir)
    if settings.default_model and registry.is_empty():
        ensure_default_model(settings.models_dir, settings.cache_dir)
        ensure_default_embedding_model(settings.models_dir, settings.cache_dir)
    _run_loop(_serve(settings, registry))


def _run_loop(main: Coroutine[Any, Any, None]) -> None:
    """Run the server's event loop: uvloop's where it is installed (a dependency everywhere
    but Windows), asyncio's otherwise. Each streamed token crosses this one loop several times
    (gRPC servicer, the bridge's gRPC client, the HTTP response); on uvloop the REST bridge's
    TTFT measured ~12 ms lower and its tokens/s 2-5% higher (paired runs on one machine)."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
    else:
        uvloop.run(main)


async def _serve(settings: Settings, registry: ModelRegistry) -> None:
    from osaurus.engine.engine import Engine
    from osaurus.server import start_grpc_server
    from rest_bridge.app import create_app

    # Bind the REST port first, so a busy port fails fast with a clear line, before any loading.
    http_socket = bind_http_socket(settings.host, settings.http_port) if settings.http else None
    keys = ApiKeys(settings.api_keys, settings.api_key_file, settings.read_only_api_keys)
    engine = Engine(registry, settings.engine_options())
    try:
        grpc_server = await start_grpc_server(
            engine,
            settings.host,
            settings.grpc_port,
            keys,
            RateLimiter(settings.rate_limit),
            _tls_pair(settings.tls_cert, settings.tls_key),
        )
    except OSError:
        engine.shutdown()
        raise
    target = f"{settings.host}:{grpc_server.port}"
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, _on_stop_signal, stop)
    loop.add_signal_handler(signal.SIGHUP, _reload_keys, keys)

    waiters: set[asyncio.Task[Any]] = {asyncio.create_task(stop.wait())}
    http_server = None
    secure = settings.tls_cert is not None
    if http_socket is not None:
        # The bridge checks the server's certificate as any client would (self-signed: itself).
        to_server = Tls(settings.tls_ca or settings.tls_cert) if secure else None
        app = create_app(target, settings.cors_origins, settings.max_request_mb << 20, to_server)
        config = uvicorn.Config(
            app,
            host=settings.host,
            port=settings.http_port,
            log_level=_uvicorn_log_level(settings.log_level),
            ssl_certfile=settings.tls_cert,
            ssl_keyfile=settings.tls_key,
            # After the drain: streams that never end (a dashboard's stats) are cut, not awaited.
            timeout_graceful_shutdown=HTTP_SHUTDOWN_SECONDS,
        )
        http_server = _HttpServer(config)
        waiters.add(asyncio.create_task(http_server.serve(sockets=[http_socket])))
    models = ", ".join(m.id for m in registry.list()) or "none"
    scheme = "https" if secure else "http"
    print(
        f"osaurus {__version__}: gRPC{' (TLS)' if secure else ''} on {target}"
        + (
            f", OpenAI API on {scheme}://{settings.host}:{settings.http_port}/v1"
            if http_server
            else ""
        )
        + f"; models in {settings.models_dir}: {models}",
        flush=True,
    )
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        if stop.is_set():  # a signal: finish what runs (the bridge keeps answering, with 503s)
            log.info("draining: up to %gs for the requests in flight", settings.drain_timeout)
            if not await grpc_server.drain(settings.drain_timeout):
                log.warning("drain timeout: %d requests still running", engine.in_flight)
    finally:
        if http_server is not None:
            http_server.should_exit = True
        await asyncio.gather(*waiters, return_exceptions=True)
        await grpc_server.stop()
        engine.shutdown()


class _HttpServer(uvicorn.Server):
    """uvicorn's server, leaving SIGINT and SIGTERM to us: on the first, the server drains
    while the bridge still answers (503 for new requests, in-flight streams to their end)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _on_stop_signal(stop: asyncio.Event) -> None:
    if stop.is_set():  # the second signal: do not wait for anything
        print("osaurus: second signal, exiting now", file=sys.stderr, flush=True)
        os._exit(1)
    stop.set()


def _tls_pair(cert: Path | None, key: Path | None) -> tuple[bytes, bytes] | None:
    """The (private key, certificate chain) gRPC serves TLS with, or None for plaintext."""
    if cert is None or key is None:
        return None
    return key.read_bytes(), cert.read_bytes()


def _reload_keys(keys: ApiKeys) -> None:
    try:
        keys.reload()
    except OsaurusError as exc:
        log.error("SIGHUP: %s", exc)


def _uvicorn_log_level(level: str) -> str:
    return "warning" if level == "info" else level  # uvicorn's info logs every request


def bind_http_socket(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise OSError(f"cannot listen for HTTP on {host}:{port}: {exc.strerror}") from exc
    sock.listen(2048)
    sock.setblocking(False)
    return sock


def bridge(settings: BridgeSettings) -> None:
    from rest_bridge.app import create_app

    host, port, target = settings.host, settings.http_port, settings.target
    sock = bind_http_socket(host, port)
    scheme = "https" if settings.tls_cert else "http"
    print(f"osaurus bridge: OpenAI API on {scheme}://{host}:{port}/v1 -> gRPC {target}", flush=True)
    to_server = Tls(settings.tls_ca) if settings.tls_ca else None
    app = create_app(target, settings.cors_origins, settings.max_request_mb << 20, to_server)
    config = uvicorn.Config(
        app,
        log_level=_uvicorn_log_level(settings.log_level),
        ssl_certfile=settings.tls_cert,
        ssl_keyfile=settings.tls_key,
    )
    _run_loop(uvicorn.Server(config).serve(sockets=[sock]))
