"""/openapi.json describes every route with its real answers: the document's own rules, then the
generating routes' answers (text, reasoning, tool calls; one body and streamed; errors) over a
fake engine, checked against it. tests/e2e/test_openapi.py checks every route on the real model."""

from __future__ import annotations

import json
import re

import pytest
from bridge_helpers import bridge_over
from fake_engine import FakeEngine
from openapi_helpers import Documented, item_schema

from osaurus.services.inference import InferenceServicer
from rest_bridge.app import create_app

USER = [{"role": "user", "content": "hi"}]
TOOL = {"name": "get_time", "description": "now", "parameters": {"type": "object"}}


def _document() -> dict:
    return create_app("127.0.0.1:1").openapi()


def test_every_route_documents_its_answers_and_errors() -> None:
    document = _document()
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            assert "422" not in responses, f"{method} {path}: FastAPI's 422 is not what we send"
            ok = responses["200"]
            if path in ("/", "/metrics"):
                continue  # plain text
            for media_type, media in ok.get("content", {}).items():
                schema = item_schema(media_type, media)
                assert schema.get("$ref"), f"{method} {path}: 200 is not a model"
            if path != "/health":
                assert {"4XX", "5XX"} <= set(responses), f"{method} {path}: errors undocumented"


def test_components_have_plain_names_and_every_ref_resolves() -> None:
    document = _document()
    names = set(document["components"]["schemas"])
    assert not [n for n in names if "__" in n or "-" in n]
    refs = set(re.findall(r'"#/components/schemas/([^"]+)"', json.dumps(document)))
    assert refs <= names, refs - names


@pytest.fixture
async def checked():
    async with bridge_over(InferenceServicer(FakeEngine())) as bridge:
        documented = Documented(bridge.app.openapi())

        async def post(path: str, body: dict, status: int = 200) -> list:
            r = await bridge.http.post(path, json=body)
            assert r.status_code == status, r.text
            return documented.check("POST", path, r)

        yield post, bridge.http, documented


@pytest.mark.parametrize("model", ["m", "thinker", "caller"])
@pytest.mark.parametrize("stream", [False, True])
async def test_generating_routes_answer_as_documented(checked, model, stream) -> None:
    post, _, _ = checked
    tools = [{"type": "function", "function": TOOL}]
    await post(
        "/v1/chat/completions",
        {"model": model, "messages": USER, "stream": stream, "tools": tools},
    )
    await post("/v1/completions", {"model": model, "prompt": "hi", "stream": stream})
    await post(
        "/v1/responses",
        {"model": model, "input": "hi", "stream": stream, "tools": [{"type": "function", **TOOL}]},
    )
    anthropic_tool = {"name": "get_time", "input_schema": {"type": "object"}}
    await post(
        "/v1/messages",
        {
            "model": model,
            "max_tokens": 8,
            "messages": USER,
            "stream": stream,
            "thinking": {"type": "enabled", "budget_tokens": 1024},
            "tools": [anthropic_tool],
        },
    )
    ollama_tools = [{"type": "function", "function": TOOL}]
    await post(
        "/api/chat", {"model": model, "messages": USER, "stream": stream, "tools": ollama_tools}
    )
    await post("/api/generate", {"model": model, "prompt": "hi", "stream": stream})


async def test_stored_responses_and_token_counts_answer_as_documented(checked) -> None:
    post, http, documented = checked
    (created,) = await post("/v1/responses", {"model": "m", "input": "hi"})
    path = "/v1/responses/{response_id}"
    documented.check("GET", path, await http.get(f"/v1/responses/{created['id']}"))
    documented.check("DELETE", path, await http.delete(f"/v1/responses/{created['id']}"))
    documented.check("GET", path, await http.get(f"/v1/responses/{created['id']}"))  # 404
    await post("/v1/messages/count_tokens", {"model": "m", "messages": USER})


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/chat/completions", {"model": "missing", "messages": USER}),
        ("/v1/completions", {"model": "m", "prompt": 3.5}),
        ("/v1/responses", {"model": "m"}),
        ("/v1/messages", {"model": "missing", "max_tokens": 8, "messages": USER}),
        ("/v1/messages/count_tokens", {"model": "m"}),
        ("/api/chat", {"model": "missing", "messages": USER, "stream": False}),
        ("/api/generate", {"prompt": "hi"}),
    ],
)
async def test_errors_answer_as_documented(checked, path, body) -> None:
    _, http, documented = checked
    r = await http.post(path, json=body)
    assert r.status_code in (400, 404)
    documented.check("POST", path, r)
