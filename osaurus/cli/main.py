"""`osaurus serve` (gRPC server and REST bridge in one process) and `osaurus bridge` (alone)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import socket
import sys
from pathlib import Path

from osaurus import __version__
from osaurus.config import Settings, parse_duration
from osaurus.errors import OsaurusError

log = logging.getLogger("osaurus")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="osaurus", description="Local LLM server on MLX.")
    parser.add_argument("--version", action="version", version=f"osaurus {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the gRPC server and the OpenAI REST bridge")
    serve.add_argument("--host", help="address to bind (env OSU_HOST, default 127.0.0.1)")
    serve.add_argument("--grpc-port", type=int, help="gRPC port (env OSU_GRPC_PORT, default 50051)")
    serve.add_argument("--http-port", type=int, help="REST port (env OSU_HTTP_PORT, default 8080)")
    serve.add_argument(
        "--models-dir", help="models directory (env OSU_MODELS_DIR, default ~/MLXModels)"
    )
    serve.add_argument(
        "--no-http", action="store_true", help="gRPC only, no REST bridge (env OSU_HTTP=0)"
    )
    serve.add_argument(
        "--no-default-model",
        action="store_true",
        help="do not fetch SmolLM2-135M when the models directory is empty "
        "(env OSU_DEFAULT_MODEL=0)",
    )
    serve.add_argument(
        "--no-openblas",
        action="store_true",
        help="keep MLX's bundled BLAS on Linux (env OSU_OPENBLAS=0)",
    )
    serve.add_argument(
        "--float32",
        choices=["auto", "always", "never"],
        help="CPU: dequantize models to float32, MLX's fastest CPU path, when they fit in memory "
        "(env OSU_FLOAT32, default auto)",
    )
    serve.add_argument(
        "--max-batch-size",
        type=int,
        help="sequences decoding together per model (env OSU_MAX_BATCH_SIZE, default 16)",
    )
    serve.add_argument(
        "--max-queue",
        type=int,
        help="requests waiting beyond the batch before new ones get 429 / RESOURCE_EXHAUSTED "
        "(env OSU_MAX_QUEUE, default 64)",
    )
    serve.add_argument(
        "--kv-cache-mb",
        type=int,
        help="memory for KV caches kept between requests, MiB "
        "(env OSU_KV_CACHE_MB, default 1/8 of RAM, at most 8192)",
    )
    serve.add_argument(
        "--no-prefix-cache",
        action="store_true",
        help="do not reuse KV caches across requests without a session id (env OSU_PREFIX_CACHE=0)",
    )
    serve.add_argument(
        "--no-speculative",
        action="store_true",
        help="no prompt-lookup speculative decoding for greedy requests decoding alone "
        "(env OSU_SPECULATIVE=0); a request may still ask for it",
    )
    serve.add_argument(
        "--keep-alive",
        help="idle time before a model unloads: seconds, or 90s, 5m, 1h; negative: never "
        "(env OSU_KEEP_ALIVE, default 5m)",
    )
    serve.add_argument(
        "--model-memory-mb",
        type=int,
        help="memory for loaded models; loading past it unloads the least recently used "
        "(env OSU_MODEL_MEMORY_MB, default 3/4 of RAM)",
    )
    serve.add_argument(
        "--max-loaded-models",
        type=int,
        help="models loaded at once, 0 for no limit, 1 for one at a time "
        "(env OSU_MAX_LOADED_MODELS, default 0)",
    )
    serve.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])

    bridge = sub.add_parser("bridge", help="run the REST bridge alone, pointed at a gRPC server")
    bridge.add_argument("--target", default="127.0.0.1:50051", help="gRPC server HOST:PORT")
    bridge.add_argument("--host", default="127.0.0.1")
    bridge.add_argument("--port", type=int, default=8080)
    bridge.add_argument(
        "--log-level", default="info", choices=["debug", "info", "warning", "error"]
    )
    return parser


def _settings(args: argparse.Namespace) -> Settings:
    settings = Settings()
    if args.host:
        settings.host = args.host
    if args.grpc_port is not None:
        settings.grpc_port = args.grpc_port
    if args.http_port is not None:
        settings.http_port = args.http_port
    if args.models_dir:
        settings.models_dir = Path(args.models_dir).expanduser()
    settings.http = settings.http and not args.no_http
    settings.default_model = settings.default_model and not args.no_default_model
    settings.use_openblas = settings.use_openblas and not args.no_openblas
    settings.prefix_cache = settings.prefix_cache and not args.no_prefix_cache
    settings.speculative = settings.speculative and not args.no_speculative
    if args.keep_alive is not None:
        settings.keep_alive = parse_duration(args.keep_alive)
    names = ("float32", "max_batch_size", "max_queue", "kv_cache_mb", "model_memory_mb")
    for name in (*names, "max_loaded_models"):
        if getattr(args, name) is not None:
            setattr(settings, name, getattr(args, name))
    settings.validate()
    return settings


def serve(settings: Settings, log_level: str = "info") -> None:
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

    from osaurus.models.default_model import ensure_default_model
    from osaurus.models.registry import ModelRegistry

    registry = ModelRegistry(settings.models_dir)
    if settings.default_model and registry.is_empty():
        ensure_default_model(settings.models_dir, settings.cache_dir)
    asyncio.run(_serve(settings, registry, log_level))


async def _serve(settings: Settings, registry, log_level: str) -> None:
    import uvicorn

    from osaurus.engine.engine import Engine
    from osaurus.server import start_grpc_server
    from rest_bridge.app import create_app

    # Bind the REST port first, so a busy port fails fast with a clear line, before any loading.
    http_socket = _bind_http_socket(settings.host, settings.http_port) if settings.http else None
    engine = Engine(registry, engine_options(settings))
    try:
        grpc_server = await start_grpc_server(engine, settings.host, settings.grpc_port)
    except OSError:
        engine.shutdown()
        raise
    target = f"{settings.host}:{grpc_server.port}"
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    waiters = {asyncio.create_task(stop.wait())}
    http_server = None
    if settings.http:
        config = uvicorn.Config(
            create_app(target),
            host=settings.host,
            port=settings.http_port,
            log_level="warning" if log_level == "info" else log_level,
        )
        http_server = uvicorn.Server(config)
        waiters.add(asyncio.create_task(http_server.serve(sockets=[http_socket])))
    models = ", ".join(m.id for m in registry.list()) or "none"
    print(
        f"osaurus {__version__}: gRPC on {target}"
        + (f", OpenAI API on http://{settings.host}:{settings.http_port}/v1" if http_server else "")
        + f"; models in {settings.models_dir}: {models}",
        flush=True,
    )
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        if http_server is not None:
            http_server.should_exit = True
        await asyncio.gather(*waiters, return_exceptions=True)
        await grpc_server.stop()
        engine.shutdown()


def engine_options(settings: Settings):
    from osaurus.engine.engine import EngineOptions
    from osaurus.engine.precision import Float32Policy

    return EngineOptions(
        default_max_tokens=settings.default_max_tokens,
        float32=Float32Policy(settings.float32),
        max_batch_size=settings.max_batch_size,
        max_queue=settings.max_queue,
        kv_cache_bytes=settings.kv_cache_mb << 20,
        prefix_cache=settings.prefix_cache,
        keep_alive=None if settings.keep_alive < 0 else settings.keep_alive,
        model_memory_bytes=settings.model_memory_mb << 20,
        max_loaded_models=settings.max_loaded_models,
        speculative=settings.speculative,
    )


def _bind_http_socket(host: str, port: int) -> socket.socket:
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


def bridge(target: str, host: str, port: int, log_level: str) -> None:
    import uvicorn

    from rest_bridge.app import create_app

    sock = _bind_http_socket(host, port)
    print(f"osaurus bridge: OpenAI API on http://{host}:{port}/v1 -> gRPC {target}", flush=True)
    config = uvicorn.Config(create_app(target), log_level=log_level)
    asyncio.run(uvicorn.Server(config).serve(sockets=[sock]))


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        if args.command == "serve":
            serve(_settings(args), args.log_level)
        else:
            bridge(args.target, args.host, args.port, args.log_level)
    except KeyboardInterrupt:
        pass
    except (OSError, OsaurusError) as exc:
        print(f"osaurus: {exc}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
