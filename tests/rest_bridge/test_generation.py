"""What every family's way of asking a model to think (or not) becomes in the contract: the
template switch and effort the engine gets, through the bridge and the real InferenceService."""

from __future__ import annotations

import pytest
from bridge_helpers import bridge_over
from fake_engine import FakeEngine

from osaurus.services.inference import InferenceServicer

USER = [{"role": "user", "content": "hi"}]
OPENAI_CHAT = {"model": "m", "messages": USER}
RESPONSES = {"model": "m", "input": "hi"}
ANTHROPIC = {"model": "m", "max_tokens": 8, "messages": USER}
OLLAMA = {"model": "m", "messages": USER, "stream": False}


@pytest.mark.parametrize(
    ("path", "body", "thinking", "effort"),
    [
        ("/v1/chat/completions", OPENAI_CHAT, None, ""),
        ("/v1/chat/completions", {**OPENAI_CHAT, "reasoning_effort": "high"}, True, "high"),
        ("/v1/chat/completions", {**OPENAI_CHAT, "reasoning_effort": "minimal"}, False, ""),
        ("/v1/responses", RESPONSES, None, ""),
        ("/v1/responses", {**RESPONSES, "reasoning": {"effort": "low"}}, True, "low"),
        ("/v1/responses", {**RESPONSES, "reasoning": {"effort": "none"}}, False, ""),
        ("/v1/messages", ANTHROPIC, False, ""),  # Anthropic's models think when asked
        ("/v1/messages", {**ANTHROPIC, "thinking": {"type": "enabled"}}, True, ""),
        ("/v1/messages", {**ANTHROPIC, "thinking": {"type": "disabled"}}, False, ""),
        ("/api/chat", OLLAMA, None, ""),
        ("/api/chat", {**OLLAMA, "think": False}, False, ""),
        ("/api/chat", {**OLLAMA, "think": True}, True, ""),
        ("/api/chat", {**OLLAMA, "think": "medium"}, True, "medium"),
    ],
)
async def test_each_family_sets_the_thinking_switch(path, body, thinking, effort) -> None:
    engine = FakeEngine()
    async with bridge_over(InferenceServicer(engine)) as bridge:
        r = await bridge.http.post(path, json=body)
    assert r.status_code == 200, r.text
    (request,) = engine.requests
    assert (request.thinking, request.reasoning_effort) == (thinking, effort)


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/chat/completions", {**OPENAI_CHAT, "reasoning_effort": "extreme"}),
        ("/v1/responses", {**RESPONSES, "reasoning": {"effort": "extreme"}}),
    ],
)
async def test_an_unknown_effort_is_a_400_naming_it(path, body) -> None:
    async with bridge_over(InferenceServicer(FakeEngine())) as bridge:
        r = await bridge.http.post(path, json=body)
    assert r.status_code == 400
    assert "effort" in r.json()["error"]["param"]
