"""Helpers of the e2e tests: real servers (osaurus.child_server) and what they kept."""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from osaurus.child_server import ChildServer, free_port, osaurus_command, start
from osaurus.config import default_cache_dir


def start_server(
    models_dir: Path, log_path: Path, *extra: str, env: dict[str, str] | None = None
) -> ChildServer:
    """A real `osaurus serve` sharing the test model's download cache, once it answers; `env`
    adds to (or overrides) the test process's environment, for the server alone."""
    environ = {**os.environ, "OSU_CACHE_DIR": str(default_cache_dir()), **(env or {})}
    return start(models_dir, log_path, *extra, env=environ)


def hub_env(endpoint: str, hf_cache: Path) -> dict[str, str]:
    """The environment of a server that talks to the hub at `endpoint` (tests run offline)."""
    return {"HF_ENDPOINT": endpoint, "HF_HUB_CACHE": str(hf_cache), "HF_HUB_OFFLINE": "0"}


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
