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
