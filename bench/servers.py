"""The servers under test, each started by the bench on 127.0.0.1 and a free port.

- osaurus: `osaurus serve` on the imported test model (4-bit, on its native CPU kernel; with
  `--float32 always` for the float32 path it had before).
- mlx_lm.server: the same model, dequantized to float32 by mlx-lm's own converter, with the
  same OpenBLAS preloaded: the same weights and the same BLAS, so the comparison is of servers.
- llama.cpp: llama.cpp's own `llama-server` (8 parallel slots) on the original GGUF, built from
  source by the bench (bench/llama_server.py).

Only one server runs at a time: the machine has two cores.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from osaurus.child_server import ChildServer, free_port, spawn
from osaurus.engine.blas import find_openblas

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "bench" / ".work"  # models and logs; not committed


@dataclass
class Server:
    name: str
    base_url: str  # OpenAI API root, ending in /v1
    model: str
    process: subprocess.Popen
    started_at: float  # time.perf_counter() at spawn, for cold start
    grpc_target: str = ""
    child: ChildServer | None = None  # osaurus: started and waited for as the tests do


def prepare_models() -> tuple[Path, Path, Path]:
    """The imported test model, a float32 copy of it for mlx_lm.server, and the GGUF."""
    from osaurus.config import default_cache_dir
    from osaurus.models.default_model import MODEL_ID, ensure_default_model, fetch_gguf

    models = WORK / "models"
    gguf = fetch_gguf(default_cache_dir(), log=print)
    ensure_default_model(models, default_cache_dir(), log=print)
    float32 = WORK / "mlx-lm-float32" / MODEL_ID
    if not (float32 / "config.json").exists():
        subprocess.run(
            [
                sys.executable,
                "-m",
                "mlx_lm",
                "convert",
                "--hf-path",
                str(models / MODEL_ID),
                "--mlx-path",
                str(float32),
                "--dequantize",
                "--dtype",
                "float32",
            ],
            check=True,
        )
    return models, float32, gguf


def _env_with_blas() -> dict[str, str]:
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    blas = find_openblas()
    if blas:  # mlx_lm.server gets the BLAS osaurus loads itself (see osaurus.engine.blas)
        env["LD_PRELOAD"] = blas
    return env


def _spawn(name: str, command: list[str], env: dict[str, str]) -> tuple[subprocess.Popen, float]:
    log = open(WORK / f"{name}.log", "w")  # noqa: SIM115 (closed with the process)
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=WORK)
    return process, started


def _wait_ready(server: Server, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"{server.name} exited; see {WORK / (server.name + '.log')}")
        try:
            if httpx.get(f"{server.base_url}/models", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{server.name} did not start in {timeout:.0f}s")


@contextmanager
def running(server: Server):
    try:
        if server.child is not None:
            server.child.wait_ready(timeout=300)
        else:
            _wait_ready(server)
        yield server
    finally:
        server.process.terminate()
        try:
            server.process.wait(30)
        except subprocess.TimeoutExpired:
            server.process.kill()


def osaurus(models: Path, model: str, name: str = "osaurus", *flags: str) -> Server:
    child = spawn(
        models,
        WORK / f"{name}.log",
        "--no-default-model",
        "--log-level",
        "warning",
        *flags,
        env=dict(os.environ, HF_HUB_OFFLINE="1"),
    )
    return Server(
        name,
        f"{child.http_url}/v1",
        model,
        child.process,
        child.started_at,
        child.grpc_target,
        child,
    )


def mlx_lm_server(float32_model: Path) -> Server:
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "mlx_lm",
        "server",
        "--model",
        str(float32_model),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "WARNING",
    ]
    process, started = _spawn("mlx_lm.server", command, _env_with_blas())
    # mlx_lm.server names a local model by its path.
    return Server(
        "mlx_lm.server", f"http://127.0.0.1:{port}/v1", str(float32_model), process, started
    )


def llama_server(gguf: Path, alias: str, parallel: int = 8) -> Server:
    """llama.cpp's own server on a GGUF, at its best settings here: `parallel` slots with
    continuous batching, one thread per core. Built from source on first use (llama_server.py).
    """
    from bench.llama_server import ensure_llama_server

    port = free_port()
    command = [
        str(ensure_llama_server()),
        "--model", str(gguf),
        "--host", "127.0.0.1",
        "--port", str(port),
        "--alias", alias,
        "--parallel", str(parallel),
        "--ctx-size", str(2048 * parallel),  # 2,048 tokens per slot
        "--threads", str(os.cpu_count() or 1),
        "--cont-batching",
        "--no-webui",
    ]  # fmt: skip
    process, started = _spawn("llama.cpp", command, dict(os.environ))  # logs to llama.cpp.log
    return Server("llama.cpp", f"http://127.0.0.1:{port}/v1", alias, process, started)
