"""Past the batch and the queue, a request is refused at once: 429 on REST."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import httpx
import pytest
from helpers import start_server

from osaurus.child_server import ChildServer

COUNTING = [{"role": "user", "content": "Write the numbers from 1 to 1000, one per line."}]


@pytest.fixture(scope="module")
def tiny_server(models_dir, tmp_path_factory) -> Iterator[ChildServer]:
    running = start_server(
        models_dir,
        tmp_path_factory.mktemp("logs") / "tiny.log",
        "--no-default-model",
        "--max-batch-size",
        "1",
        "--max-queue",
        "0",
    )
    yield running
    running.stop()


def test_a_request_past_the_limit_gets_429_at_once(tiny_server, model_id) -> None:
    url = f"{tiny_server.http_url}/v1/chat/completions"
    body = {"model": model_id, "messages": COUNTING, "max_tokens": 300, "stream": True}
    started = threading.Event()
    stop = threading.Event()

    def hold_the_only_slot() -> None:
        with httpx.stream("POST", url, json=body, timeout=120) as r:
            for line in r.iter_lines():
                if line.startswith("data: "):
                    started.set()
                if stop.is_set():
                    break

    holder = threading.Thread(target=hold_the_only_slot)
    holder.start()
    try:
        assert started.wait(60)
        begin = time.monotonic()
        r = httpx.post(url, json={**body, "stream": False}, timeout=30)
        assert time.monotonic() - begin < 2
        assert r.status_code == 429
        error = r.json()["error"]
        assert error["code"] == "resource_exhausted" and "busy" in error["message"]
        assert r.headers["retry-after"] == "1"
    finally:
        stop.set()
        holder.join()


def test_rate_limit_per_key_is_429_with_retry_after(models_dir, model_id, tmp_path) -> None:
    server = start_server(
        models_dir,
        tmp_path / "server.log",
        "--no-default-model",
        "--rate-limit",
        "2",
        "--api-key",
        "key-one",
        "--api-key",
        "key-two",
    )
    body = {"model": model_id, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2}
    try:
        with httpx.Client(base_url=server.http_url, timeout=60) as http:

            def chat(key: str) -> httpx.Response:
                headers = {"authorization": f"Bearer {key}"}
                return http.post("/v1/chat/completions", json=body, headers=headers)

            assert [chat("key-one").status_code for _ in range(2)] == [200, 200]
            limited = chat("key-one")
            assert limited.status_code == 429
            assert limited.json()["error"]["code"] == "rate_limited"
            assert "2 requests a minute" in limited.json()["error"]["message"]
            assert 1 <= int(limited.headers["retry-after"]) <= 30
            assert chat("key-two").status_code == 200  # another key, another budget
            listed = http.get("/v1/models", headers={"authorization": "Bearer key-one"})
            assert listed.status_code == 200  # only inference counts
    finally:
        server.stop()
