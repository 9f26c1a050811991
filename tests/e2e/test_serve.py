"""`osaurus serve` on an empty models directory, and `osaurus bridge` on its own."""

from __future__ import annotations

import subprocess
import sys
import time

import httpx
import openai
from helpers import free_port, start_server, stop_server


def test_serve_fetches_the_default_model_into_an_empty_dir(tmp_path, gguf_path, model_id) -> None:
    # The wheel is already cached by the session fixtures, so this imports without downloading.
    models_dir = tmp_path / "empty-models"
    server = start_server(models_dir, tmp_path / "serve.log")
    try:
        assert (models_dir / model_id / "config.json").is_file()
        client = openai.OpenAI(base_url=f"{server.http_url}/v1", api_key="x", max_retries=0)
        assert [m.id for m in client.models.list().data] == [model_id]
        assert "importing" in server.log()
    finally:
        stop_server(server)
    assert server.process.returncode == 0  # SIGTERM is a clean shutdown


def test_bridge_alone_talks_to_a_server_over_grpc(server, model_id, tmp_path) -> None:
    port = free_port()
    bridge = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "osaurus",
            "bridge",
            "--target",
            server.grpc_target,
            "--port",
            str(port),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                httpx.get(f"{url}/health", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="x", max_retries=0, timeout=60)
        r = client.chat.completions.create(
            model=model_id,
            max_tokens=12,
            temperature=0,
            messages=[{"role": "user", "content": "What is the capital of France?"}],
        )
        assert "Paris" in r.choices[0].message.content
    finally:
        bridge.terminate()
        bridge.wait(timeout=10)


def test_bridge_with_no_server_reports_unavailable(tmp_path) -> None:
    port = free_port()
    dead_target = f"127.0.0.1:{free_port()}"
    bridge = subprocess.Popen(
        [sys.executable, "-m", "osaurus", "bridge", "--target", dead_target, "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                health = httpx.get(f"{url}/health", timeout=5)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        assert health.status_code == 503 and health.json()["grpc_reachable"] is False
        r = httpx.post(
            f"{url}/v1/chat/completions",
            timeout=30,
            json={"model": "m", "messages": [{"role": "user", "content": "hi"}]},
        )
        assert r.status_code == 503
        assert dead_target in r.json()["error"]["message"]
    finally:
        bridge.terminate()
        bridge.wait(timeout=10)


def test_busy_ports_fail_fast_with_one_clear_line(server, tmp_path) -> None:
    grpc_port = server.grpc_target.rsplit(":", 1)[1]
    http_port = server.http_url.rsplit(":", 1)[1]
    for args, what in (
        (["--grpc-port", grpc_port, "--http-port", str(free_port())], "gRPC"),
        (["--grpc-port", str(free_port()), "--http-port", http_port], "HTTP"),
    ):
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "osaurus",
                "serve",
                "--models-dir",
                str(server.models_dir),
                "--no-default-model",
                *args,
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 1
        assert f"osaurus: cannot listen for {what}" in result.stderr
        assert "Traceback" not in result.stderr
    bridge = subprocess.run(
        [
            sys.executable,
            "-m",
            "osaurus",
            "bridge",
            "--target",
            server.grpc_target,
            "--port",
            http_port,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bridge.returncode == 1 and "cannot listen for HTTP" in bridge.stderr
