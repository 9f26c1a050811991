"""Every route of the bridge, on the real server and model, answers as /openapi.json documents:
each JSON body, SSE event and NDJSON line against the documented schema, errors included."""

from __future__ import annotations

import httpx
import pytest
from openapi_helpers import Documented

USER = [{"role": "user", "content": "Say hi."}]
WEATHER = {
    "name": "get_weather",
    "description": "Weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
}


@pytest.fixture(scope="module")
def http(server):
    with httpx.Client(base_url=server.http_url, timeout=120) as client:
        yield client


@pytest.fixture(scope="module")
def documented(http) -> Documented:
    return Documented(http.get("/openapi.json").json())


def _call(
    http, documented, method: str, path: str, url: str | None = None, expect: int = 200, **kw
) -> list:
    response = http.request(method, url or path, **kw)
    assert response.status_code == expect, response.text
    return documented.check(method, path, response)


@pytest.mark.parametrize("stream", [False, True])
def test_generating_routes(http, documented, model_id, stream) -> None:
    def post(path: str, body: dict) -> list:
        return _call(http, documented, "POST", path, json={**body, "stream": stream})

    small = {"model": model_id, "temperature": 0}
    post("/v1/chat/completions", {**small, "messages": USER, "max_tokens": 8, "logprobs": True})
    tools = [{"type": "function", "function": WEATHER}]
    post(
        "/v1/chat/completions",
        {**small, "messages": USER, "max_tokens": 24, "tools": tools, "tool_choice": "required"},
    )
    post("/v1/completions", {**small, "prompt": "The sky is", "max_tokens": 6, "logprobs": 2})
    if not stream:
        post("/v1/completions", {**small, "prompt": ["A", "B"], "max_tokens": 3, "echo": True})
    post("/v1/responses", {**small, "input": "Hi", "max_output_tokens": 6})
    post(
        "/v1/responses",
        {**small, "input": "Weather?", "tools": [{"type": "function", **WEATHER}],
         "tool_choice": "required", "max_output_tokens": 24},
    )  # fmt: skip
    anthropic_tool = {"name": "get_weather", "input_schema": WEATHER["parameters"]}
    post("/v1/messages", {**small, "max_tokens": 6, "messages": USER, "stop_sequences": ["!"]})
    post(
        "/v1/messages",
        {**small, "max_tokens": 24, "messages": USER, "tools": [anthropic_tool],
         "tool_choice": {"type": "any"}},
    )  # fmt: skip
    options = {"temperature": 0, "num_predict": 6}
    post("/api/chat", {"model": model_id, "messages": USER, "options": options})
    post("/api/generate", {"model": model_id, "prompt": "Hi", "options": options})


def test_model_and_embedding_routes(http, documented, model_id, embedding_model_id) -> None:
    call = lambda *a, **kw: _call(http, documented, *a, **kw)  # noqa: E731
    call("GET", "/health")
    call("GET", "/v1/models")
    call("GET", "/v1/models/{model_id}", f"/v1/models/{model_id}")
    call("GET", "/v1/models/{model_id}", "/v1/models/no-such-model", expect=404)
    call("POST", "/v1/embeddings", json={"model": embedding_model_id, "input": ["a", "b"]})
    embed = {"model": embedding_model_id, "input": "a", "encoding_format": "base64"}
    call("POST", "/v1/embeddings", json=embed)
    call("POST", "/v1/messages/count_tokens", json={"model": model_id, "messages": USER})
    call("GET", "/api/version")
    call("GET", "/api/tags")
    call("GET", "/api/ps")
    call("POST", "/api/show", json={"model": model_id})
    call("POST", "/api/embed", json={"model": embedding_model_id, "input": ["a", "b"]})
    call("POST", "/api/embeddings", json={"model": embedding_model_id, "prompt": "a"})
    copy = {"source": model_id, "destination": "openapi-copy"}
    call("POST", "/api/copy", json=copy)
    call("DELETE", "/api/delete", json={"model": "openapi-copy"})
    call("DELETE", "/api/delete", json={"model": "openapi-copy"}, expect=404)
    pull = {"model": "someone/unreachable-4bit", "stream": False}
    call("POST", "/api/pull", json=pull, expect=503)  # the hub is offline here


def test_pull_streams_as_documented(hub_server) -> None:
    with httpx.Client(base_url=hub_server.http_url, timeout=120) as http:
        documented = Documented(http.get("/openapi.json").json())
        body = {"model": "mlx-community/SmolLM2-135M-Instruct-4bit"}
        lines = _call(http, documented, "POST", "/api/pull", json=body)
    assert lines[-1] == {"status": "success"}
    assert any("completed" in line for line in lines)
