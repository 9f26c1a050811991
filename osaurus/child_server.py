"""`osaurus serve` as a child process on free ports: started, waited for until both its gRPC
server and its REST bridge answer, stopped. Tests and bench/ start their servers with it."""

from __future__ import annotations

import os
import socket
import ssl
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import grpc
import httpx
from grpc_health.v1 import health_pb2, health_pb2_grpc

from osaurus.client import Tls, open_channel

START_TIMEOUT_SECONDS = 120.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def osaurus_command(*args: str) -> list[str]:
    """argv for the `osaurus` CLI in this interpreter."""
    return [sys.executable, "-m", "osaurus", *args]


@dataclass
class ChildServer:
    process: subprocess.Popen
    grpc_target: str
    http_url: str  # "" when started with --no-http
    models_dir: Path
    log_path: Path
    started_at: float  # time.perf_counter() at spawn, for cold-start figures
    tls_ca: Path | None = None  # set when it serves TLS: what a client trusts to reach it

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, timeout: float = START_TIMEOUT_SECONDS) -> None:
        """Until gRPC health says SERVING and the bridge's /health reaches it; raises with the
        server's log if it exits or takes longer than `timeout`."""
        deadline = time.monotonic() + timeout
        tls = Tls(self.tls_ca) if self.tls_ca else None
        with open_channel(self.grpc_target, tls=tls) as chan:
            health = health_pb2_grpc.HealthStub(chan)
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise RuntimeError(f"osaurus serve exited early:\n{self.log()}")
                if self._answers(health):
                    return
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"osaurus serve did not become ready in {timeout:.0f}s:\n{self.log()}")

    def _answers(self, health: health_pb2_grpc.HealthStub) -> bool:
        try:
            # types-grpcio-health-checking's HealthStub lists no methods.
            reply = health.Check(health_pb2.HealthCheckRequest(), timeout=1)  # type: ignore[attr-defined]
            if reply.status != health_pb2.HealthCheckResponse.SERVING:
                return False
            if not self.http_url:
                return True
            verify = ssl.create_default_context(cafile=self.tls_ca) if self.tls_ca else True
            bridge = httpx.get(f"{self.http_url}/health", timeout=1, verify=verify)
            return bool(bridge.json()["grpc_reachable"])
        except (grpc.RpcError, httpx.HTTPError, ValueError, KeyError):
            return False

    def stop(self, timeout: float = 15) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def spawn(
    models_dir: Path, log_path: Path, *flags: str, env: dict[str, str] | None = None
) -> ChildServer:
    """Start `osaurus serve` on free ports with `flags`, its output into `log_path`; does not
    wait (see ChildServer.wait_ready)."""
    grpc_port, http_port = free_port(), free_port()
    command = osaurus_command(
        "serve",
        "--grpc-port",
        str(grpc_port),
        "--http-port",
        str(http_port),
        "--models-dir",
        str(models_dir),
        *flags,
    )
    started_at = time.perf_counter()
    with open(log_path, "w") as log:  # the child keeps its own descriptor
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, env=env or dict(os.environ)
        )
    tls_ca = _flag(flags, "--tls-ca") or _flag(flags, "--tls-cert")
    scheme = "https" if tls_ca else "http"
    http_url = "" if "--no-http" in flags else f"{scheme}://127.0.0.1:{http_port}"
    target = f"127.0.0.1:{grpc_port}"
    ca = Path(tls_ca) if tls_ca else None
    return ChildServer(process, target, http_url, models_dir, log_path, started_at, ca)


def _flag(flags: tuple[str, ...], name: str) -> str | None:
    return flags[flags.index(name) + 1] if name in flags[:-1] else None


def start(models_dir: Path, log_path: Path, *flags: str, **kwargs) -> ChildServer:
    """spawn, then wait until it is ready."""
    server = spawn(models_dir, log_path, *flags, **kwargs)
    server.wait_ready()
    return server
