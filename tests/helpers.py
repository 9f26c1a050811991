"""Start and stop a real `osaurus serve` process on free ports (used by conftest and e2e tests)."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from osaurus.config import default_cache_dir

SERVER_START_TIMEOUT = 120.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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
        osaurus_command(
            "serve",
            "--grpc-port",
            str(grpc_port),
            "--http-port",
            str(http_port),
            "--models-dir",
            str(models_dir),
            *extra,
        ),
        stdout=log_file,
        stderr=subprocess.STDOUT,
        env=env,
    )
    server = ServerProcess(
        process, f"127.0.0.1:{grpc_port}", f"http://127.0.0.1:{http_port}", models_dir, log_path
    )
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


def osaurus_command(*args: str) -> list[str]:
    """argv for the `osaurus` CLI in this interpreter."""
    return [sys.executable, "-m", "osaurus", *args]


@contextlib.contextmanager
def running_bridge(target: str) -> Iterator[str]:
    """`osaurus bridge` alone, pointed at `target`; yields its base URL once it answers."""
    port = free_port()
    process = subprocess.Popen(
        osaurus_command("bridge", "--target", target, "--port", str(port)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                httpx.get(f"{url}/", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


def wait_until_idle(channel, within: float) -> bool:
    """True once the server reports no request in its batches, polling for `within` seconds."""
    from osaurus.v1 import system_pb2, system_pb2_grpc

    system = system_pb2_grpc.SystemServiceStub(channel)
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if system.GetStatus(system_pb2.GetStatusRequest()).active_requests == 0:
            return True
        time.sleep(0.2)
    return False


def kept_tokens(channel, session_id: str) -> int:
    """Tokens the server kept in a session's cache once its request ended (what it processed),
    0 when it kept none. Cancel tests decide by this, not by time, so that a cancel that does
    nothing fails however fast the machine is."""
    import grpc

    from osaurus.v1 import session_pb2, session_pb2_grpc

    sessions = session_pb2_grpc.SessionServiceStub(channel)
    try:
        reply = sessions.GetSession(session_pb2.GetSessionRequest(id=session_id))
    except grpc.RpcError as error:
        assert error.code() == grpc.StatusCode.NOT_FOUND, error
        return 0
    return reply.session.cached_tokens
