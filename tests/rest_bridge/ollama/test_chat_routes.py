"""/api/chat and /api/generate through the bridge and the real InferenceService over a fake
engine: Ollama's object shapes (tool calls with object arguments, thinking apart), NDJSON, and
its errors. (The real model is covered by tests/e2e/test_ollama_api.py.)"""

from __future__ import annotations

import json

import ollama
import pytest
from bridge_helpers import bridge_over
from fake_engine import FakeEngine

from osaurus.services.inference import InferenceServicer

USER = [{"role": "user", "content": "hi"}]


@pytest.fixture
async def bridge():
    engine = FakeEngine()
    async with bridge_over(InferenceServicer(engine)) as bridge:
        client = ollama.AsyncClient(host="http://bridge", transport=bridge.transport)
        yield client, bridge.http, engine


async def test_tool_calls_come_whole_with_object_arguments(bridge) -> None:
    client, _, _ = bridge
    r = await client.chat(model="caller", messages=USER, tools=[_TOOL])
    (call,) = r.message.tool_calls
    assert (call.function.name, call.function.arguments) == ("get_time", {"tz": "UTC"})
    assert r.done_reason == "stop"
    parts = [p async for p in await client.chat(model="caller", messages=USER, stream=True)]
    calls = [c for p in parts for c in p.message.tool_calls or []]
    assert [(c.function.name, c.function.arguments) for c in calls] == [("get_time", {"tz": "UTC"})]
    assert parts[-1].done


async def test_thinking_is_apart_and_only_when_wanted(bridge) -> None:
    client, _, _ = bridge
    r = await client.chat(model="thinker", messages=USER, think=True)
    assert (r.message.thinking, r.message.content) == ("Hmm.", "Hello")
    r = await client.chat(model="thinker", messages=USER, think=False)
    assert r.message.thinking is None and r.message.content == "Hello"
    g = await client.generate(model="thinker", prompt="hi", think=True)
    assert (g.thinking, g.response) == ("Hmm.", "Hello")


async def test_the_request_reaches_the_server_translated(bridge) -> None:
    client, _, engine = bridge
    await client.chat(
        model="m:latest",
        messages=[
            {"role": "system", "content": "be brief"},
            *USER,
            {
                "role": "assistant",
                "tool_calls": [{"function": {"name": "f", "arguments": {"a": 1}}}],
            },
            {"role": "tool", "content": "42", "tool_name": "f"},
        ],
        options={"temperature": 0.5, "top_k": 3, "num_predict": 9, "stop": ["END"], "seed": 7},
        format="json",
        keep_alive="10m",
    )
    sent = engine.requests[-1]
    assert sent.model == "m"  # the :latest tag is the bare id here
    assert (sent.sampling.temperature, sent.sampling.top_k, sent.sampling.seed) == (0.5, 3, 7)
    assert (sent.max_tokens, sent.stop, sent.keep_alive) == (9, ["END"], 600.0)
    assert sent.response_format is not None and sent.response_format.type == "json_object"
    assert [m.role for m in sent.messages] == ["system", "user", "assistant", "tool"]
    assert json.loads(sent.messages[2].tool_calls[0].arguments) == {"a": 1}
    assert sent.messages[3].name == "f"


async def test_stream_is_ndjson_and_a_late_error_is_one_line(bridge) -> None:
    _, http, _ = bridge
    r = await http.post("/api/chat", json={"model": "m", "messages": USER})
    assert r.headers["content-type"] == "application/x-ndjson"
    lines = [json.loads(line) for line in r.text.splitlines()]
    assert [line["done"] for line in lines] == [False, False, True]
    assert "".join(line["message"]["content"] for line in lines) == "Hello"


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        ({"model": "missing", "messages": USER}, 404, "not found"),
        ({"model": "m", "messages": USER, "options": {"num_predict": 0}}, 400, "num_predict"),
        ({"model": "m", "messages": USER, "options": {"top_p": 1.5}}, 400, "top_p"),
        ({"model": "m", "messages": USER, "keep_alive": "soon"}, 400, "not a duration"),
        ({"model": "m", "messages": [{"role": "wizard", "content": "x"}]}, 400, "role"),
        ({"messages": USER}, 400, "model is required"),
    ],
)
async def test_bad_requests_are_ollama_errors(bridge, body, status, fragment) -> None:
    _, http, _ = bridge
    r = await http.post("/api/chat", json=body)
    assert r.status_code == status and set(r.json()) == {"error"}
    assert fragment in r.json()["error"]


async def test_generate_refuses_what_it_cannot_do_clearly(bridge) -> None:
    _, http, _ = bridge
    for extra, fragment in (
        ({"template": "{{ .Prompt }}"}, "template"),
        ({"suffix": "end"}, "suffix"),
        ({"images": ["aGk="]}, "images"),
    ):
        r = await http.post("/api/generate", json={"model": "m", "prompt": "x", **extra})
        assert r.status_code == 400 and fragment in r.json()["error"]


_TOOL = {
    "type": "function",
    "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}},
}


async def test_embed_routes_refuse_a_bad_keep_alive_and_empty_input(bridge) -> None:
    _, http, _ = bridge
    for path, body in (
        ("/api/embeddings", {"model": "m", "prompt": "x", "keep_alive": "soon"}),
        ("/api/embed", {"model": "m", "input": "x", "keep_alive": "soon"}),
    ):
        r = await http.post(path, json=body)
        assert r.status_code == 400 and "not a duration" in r.json()["error"]
    r = await http.post("/api/embed", json={"model": "m", "input": [""]})
    assert r.status_code == 400 and "input" in r.json()["error"]
