"""The server's own REST API (/osaurus/v1) on the real server: status, models, load and unload,
hub search (the curated list when the hub is unreachable), pulls as SSE, the stats stream; every
answer as /openapi.json documents it."""

from __future__ import annotations

import json

import httpx
import pytest
from openapi_helpers import Documented

API = "/osaurus/v1"


@pytest.fixture(scope="module")
def http(server):
    with httpx.Client(base_url=server.http_url, timeout=60) as client:
        yield client


@pytest.fixture(scope="module")
def documented(http) -> Documented:
    return Documented(http.get("/openapi.json").json())


def _check(documented, method: str, path: str, response: httpx.Response, status: int = 200):
    assert response.status_code == status, response.text
    return documented.check(method, API + path, response)


def test_status_models_load_and_unload(http, documented, model_id) -> None:
    (status,) = _check(documented, "GET", "/status", http.get(f"{API}/status"))
    assert status["version"] and status["grpc_target"] and status["request_limit"] > 0
    (listed,) = _check(documented, "GET", "/models", http.get(f"{API}/models"))
    assert model_id in [m["id"] for m in listed["models"]]
    path = "/models/{model_id}/load"
    (loaded,) = _check(documented, "POST", path, http.post(f"{API}/models/{model_id}/load"))
    assert loaded["model"]["loaded"] and loaded["model"]["memory_bytes"] > 0
    (status,) = _check(documented, "GET", "/status", http.get(f"{API}/status"))
    assert model_id in [m["id"] for m in status["loaded_models"]]
    missing = http.post(f"{API}/models/no-such-model/load")
    (error,) = _check(documented, "POST", path, missing, 404)
    assert "no-such-model" in error["error"]["message"]
    bad = http.post(f"{API}/models/{model_id}/load", json={"keep_alive": "soon"})
    _check(documented, "POST", path, bad, 400)
    unload = http.post(f"{API}/models/{model_id}/unload")
    (unloaded,) = _check(documented, "POST", "/models/{model_id}/unload", unload)
    assert unloaded == {"was_loaded": True}


def test_import_and_delete(http, documented, gguf_path) -> None:
    body = {"gguf_path": str(gguf_path), "name": "manage-import"}
    (imported,) = _check(
        documented, "POST", "/models/import", http.post(f"{API}/models/import", json=body)
    )
    assert imported["model"]["id"] == "manage-import"
    path = "/models/{model_id}"
    (deleted,) = _check(documented, "DELETE", path, http.delete(f"{API}/models/manage-import"))
    assert deleted["freed_bytes"] > 0
    _check(documented, "DELETE", path, http.delete(f"{API}/models/manage-import"), 404)
    missing = http.post(f"{API}/models/import", json={"gguf_path": "/nowhere.gguf"})
    assert missing.status_code in (400, 404)
    documented.check("POST", f"{API}/models/import", missing)


def test_search_offline_answers_the_curated_list(http, documented) -> None:
    # The e2e server runs with HF_HUB_OFFLINE: the hub is unreachable.
    (found,) = _check(documented, "GET", "/hub/search", http.get(f"{API}/hub/search?query=qwen"))
    assert not found["hub_reachable"] and "curated" in found["note"]
    assert found["models"] and all(m["size_bytes"] > 0 for m in found["models"])


def test_stats_stream(http, documented) -> None:
    samples = []
    with http.stream("GET", f"{API}/system/stats?interval_seconds=0.2") as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        for line in r.iter_lines():
            if line.startswith("data:"):
                samples.append(json.loads(line[5:]))
            if len(samples) == 3:
                break
    assert samples[2]["timestamp"] > samples[0]["timestamp"]
    assert all(s["memory_total_bytes"] > s["memory_used_bytes"] > 0 for s in samples)
    counted = http.get(f"{API}/system/stats?interval_seconds=0.1&count=2")  # ends by itself
    _check(documented, "GET", "/system/stats", counted, 200)
    assert counted.text.count("data:") == 2
    too_fast = http.get(f"{API}/system/stats?interval_seconds=0.01")
    _check(documented, "GET", "/system/stats", too_fast, 400)


def test_pull_streams_progress_then_done(hub_server) -> None:
    with httpx.Client(base_url=hub_server.http_url, timeout=120) as http:
        documented = Documented(http.get("/openapi.json").json())
        body = {"repo_id": "mlx-community/SmolLM2-135M-Instruct-4bit"}
        events = _check(documented, "POST", "/hub/pull", http.post(f"{API}/hub/pull", json=body))
        assert events[-1]["type"] == "done" and events[-1]["model"]["size_bytes"] > 0
        assert any(e["type"] == "progress" and e["bytes_total"] > 0 for e in events)
        listed = http.get(f"{API}/models").json()["models"]
        assert events[-1]["model"]["id"] in [m["id"] for m in listed]
        unknown = http.post(f"{API}/hub/pull", json={"repo_id": "someone/nothing-here"})
        _check(documented, "POST", "/hub/pull", unknown, 404)
