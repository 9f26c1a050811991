"""/v1/messages through the bridge and the real InferenceService over a fake engine, with the
official anthropic SDK: content blocks, tool_use, thinking, the stream's event sequence, errors.
(The real model is covered by tests/e2e/test_anthropic_api.py.)"""

from __future__ import annotations

import anthropic
import httpx2
import pytest
from bridge_helpers import bridge_over
from fake_engine import FakeEngine

from osaurus.services.inference import InferenceServicer

USER = [{"role": "user", "content": "hi"}]
TOOL = {"name": "get_time", "input_schema": {"type": "object", "properties": {}}}


@pytest.fixture
async def bridge():
    engine = FakeEngine()
    async with bridge_over(InferenceServicer(engine)) as bridge:
        http2 = httpx2.AsyncClient(transport=httpx2.ASGITransport(app=bridge.app))
        client = anthropic.AsyncAnthropic(
            base_url="http://bridge", api_key="any", max_retries=0, http_client=http2
        )
        yield client, bridge.http, engine


async def test_text_message_shape(bridge) -> None:
    client, _, _ = bridge
    m = await client.messages.create(model="m", max_tokens=10, messages=USER)
    assert m.type == "message" and m.role == "assistant" and m.id.startswith("msg_")
    assert [(b.type, b.text) for b in m.content] == [("text", "Hello")]
    assert m.stop_reason == "end_turn" and m.stop_sequence is None
    assert (m.usage.input_tokens, m.usage.output_tokens) == (5, 3)


async def test_tool_use_and_the_round_trip_request(bridge) -> None:
    client, _, engine = bridge
    m = await client.messages.create(
        model="caller", max_tokens=10, messages=USER, tools=[TOOL], tool_choice={"type": "any"}
    )
    (block,) = m.content
    assert (block.type, block.name, block.input) == ("tool_use", "get_time", {"tz": "UTC"})
    assert m.stop_reason == "tool_use"
    sent = engine.requests[-1]
    assert sent.tool_choice.mode == "required" and [t.name for t in sent.tools] == ["get_time"]
    await client.messages.create(
        model="m",
        max_tokens=10,
        system=[{"type": "text", "text": "be brief"}],
        messages=[
            *USER,
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": "t1", "name": "get_time", "input": {}}],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "t1", "content": "12:00"},
                    {"type": "text", "text": "and now?"},
                ],
            },
        ],
        tools=[TOOL],
        tool_choice={"type": "tool", "name": "get_time", "disable_parallel_tool_use": True},
    )
    sent = engine.requests[-1]
    assert [m.role for m in sent.messages] == ["system", "user", "assistant", "tool", "user"]
    assert sent.messages[3].tool_call_id == "t1" and sent.messages[3].content == "12:00"
    assert sent.tool_choice.mode == "function" and sent.tool_choice.name == "get_time"
    assert sent.parallel_tool_calls is False


async def test_thinking_blocks_only_when_enabled(bridge) -> None:
    client, _, _ = bridge
    m = await client.messages.create(
        model="thinker",
        max_tokens=10,
        messages=USER,
        thinking={"type": "enabled", "budget_tokens": 1024},
    )
    assert [b.type for b in m.content] == ["thinking", "text"] and m.content[0].thinking == "Hmm."
    plain = await client.messages.create(model="thinker", max_tokens=10, messages=USER)
    assert [b.type for b in plain.content] == ["text"]


async def test_the_stream_has_anthropics_event_sequence(bridge) -> None:
    client, _, _ = bridge
    async with client.messages.stream(
        model="caller", max_tokens=10, messages=USER, tools=[TOOL]
    ) as stream:
        kinds = [event.type async for event in stream]
        final = await stream.get_final_message()
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    assert "content_block_start" in kinds and "content_block_stop" in kinds
    assert kinds[-2] == "message_delta"
    assert final.content[0].type == "tool_use" and final.content[0].input == {"tz": "UTC"}
    assert final.stop_reason == "tool_use"
    async with client.messages.stream(model="m", max_tokens=10, messages=USER) as stream:
        text = "".join([t async for t in stream.text_stream])
    assert text == "Hello"


@pytest.mark.parametrize(
    ("body", "status", "error_type", "fragment"),
    [
        ({"model": "m", "messages": USER}, 400, "invalid_request_error", "max_tokens"),
        (
            {"model": "m", "max_tokens": 5, "messages": USER, "temperature": 1.5},
            400,
            "invalid_request_error",
            "temperature",
        ),
        (
            {"model": "missing", "max_tokens": 5, "messages": USER},
            404,
            "not_found_error",
            "not found",
        ),
        (
            {
                "model": "m",
                "max_tokens": 5,
                "messages": [{"role": "user", "content": [{"type": "image", "source": {}}]}],
            },
            400,
            "invalid_request_error",
            "image",
        ),
    ],
)
async def test_errors_are_anthropic_shaped(bridge, body, status, error_type, fragment) -> None:
    _, http, _ = bridge
    r = await http.post("/v1/messages", json=body, headers={"anthropic-version": "2023-06-01"})
    assert r.status_code == status
    payload = r.json()
    assert payload["type"] == "error" and payload["error"]["type"] == error_type
    assert fragment in payload["error"]["message"]


async def test_a_bad_request_raises_the_sdks_error(bridge) -> None:
    client, _, _ = bridge
    with pytest.raises(anthropic.BadRequestError):
        await client.messages.create(model="m", max_tokens=5, messages=[])
    with pytest.raises(anthropic.NotFoundError):
        await client.messages.create(model="missing", max_tokens=5, messages=USER)
