"""Graceful drain on a real server: on SIGTERM the stream in flight runs to its end, new
requests are refused (503 on REST, UNAVAILABLE on gRPC) and health says NOT_SERVING at once,
then the process exits 0; a second signal exits at once."""

from __future__ import annotations

import signal
import threading
import time

import grpc
import httpx
import openai
from grpc_health.v1 import health_pb2, health_pb2_grpc
from helpers import start_server

from osaurus.client import open_channel
from osaurus.v1 import model_pb2, model_pb2_grpc

TOKENS = 200


def _stream_in_background(server, model_id: str) -> tuple[threading.Thread, dict, threading.Event]:
    """A long greedy stream; `got` holds its chunks' text and finish reason when it ends."""
    client = openai.OpenAI(base_url=f"{server.http_url}/v1", api_key="x", max_retries=0)
    got: dict = {"text": "", "finish": None, "error": None}
    started = threading.Event()

    def run() -> None:
        try:
            for chunk in client.chat.completions.create(
                model=model_id,
                messages=[{"role": "user", "content": "Count to a thousand."}],
                max_tokens=TOKENS,
                temperature=0,
                stream=True,
                extra_body={"ignore_eos": True},
            ):
                if chunk.choices and chunk.choices[0].delta.content:
                    got["text"] += chunk.choices[0].delta.content
                    started.set()
                if chunk.choices and chunk.choices[0].finish_reason:
                    got["finish"] = chunk.choices[0].finish_reason
        except Exception as exc:  # recorded: the test says what went wrong
            got["error"] = exc
            started.set()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, got, started


def _watch_stats_forever(server) -> None:
    """A stream that never ends by itself, as an open dashboard holds: it must not keep the
    server from exiting."""
    try:
        url = f"{server.http_url}/osaurus/v1/system/stats?interval_seconds=0.5"
        with httpx.stream("GET", url, timeout=None) as r:
            for _ in r.iter_lines():
                pass
    except httpx.HTTPError:
        pass  # cut when the server exits


def test_sigterm_lets_the_stream_finish_refuses_new_work_and_exits_0(
    models_dir, model_id, tmp_path
) -> None:
    server = start_server(models_dir, tmp_path / "server.log", "--no-default-model")
    thread, got, started = _stream_in_background(server, model_id)
    threading.Thread(target=_watch_stats_forever, args=(server,), daemon=True).start()
    assert started.wait(60) and got["error"] is None
    server.process.send_signal(signal.SIGTERM)
    with open_channel(server.grpc_target) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        deadline = time.monotonic() + 5
        status = None
        while time.monotonic() < deadline:
            status = health.Check(health_pb2.HealthCheckRequest()).status
            if status == health_pb2.HealthCheckResponse.NOT_SERVING:
                break
            time.sleep(0.05)
        assert status == health_pb2.HealthCheckResponse.NOT_SERVING
        try:
            model_pb2_grpc.ModelServiceStub(channel).ListModels(model_pb2.ListModelsRequest())
            raise AssertionError("a new call was served while draining")
        except grpc.RpcError as exc:
            assert exc.code() == grpc.StatusCode.UNAVAILABLE and "shutting down" in exc.details()
    refused = httpx.get(f"{server.http_url}/v1/models", timeout=10)
    assert refused.status_code == 503 and "shutting down" in refused.json()["error"]["message"]
    thread.join(60)
    assert got["error"] is None and got["finish"] == "length", got
    assert server.process.wait(30) == 0
    assert "draining" in server.log()


def test_a_second_signal_exits_at_once(models_dir, model_id, tmp_path) -> None:
    server = start_server(models_dir, tmp_path / "server.log", "--no-default-model")
    thread, got, started = _stream_in_background(server, model_id)
    assert started.wait(60)
    server.process.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    server.process.send_signal(signal.SIGTERM)
    assert server.process.wait(10) == 1
    thread.join(30)
    assert got["finish"] is None  # it did not wait for the stream
