"""The official anthropic SDK against the bridge of a real server with the real model."""

from __future__ import annotations

import anthropic
import pytest

QUESTION = [{"role": "user", "content": "Name the capital of France."}]
ANSWER = "The capital of France is Paris."
WEATHER_TOOL = {
    "name": "get_weather",
    "description": "The weather in a city.",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}


@pytest.fixture(scope="module")
def client(server) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=server.http_url, api_key="any", max_retries=0)


def test_create_text_system_and_stop_sequences(client, model_id) -> None:
    # Unset sampling is greedy on osaurus, whatever the API: the same answer every time.
    m = client.messages.create(model=model_id, max_tokens=64, messages=QUESTION)
    assert [b.text for b in m.content] == [ANSWER] and m.stop_reason == "end_turn"
    assert m.model == model_id and m.usage.output_tokens == 7 and m.usage.input_tokens > 0
    cut = client.messages.create(
        model=model_id, max_tokens=64, messages=QUESTION, stop_sequences=["Paris"]
    )
    assert cut.content[0].text == "The capital of France is "
    assert (cut.stop_reason, cut.stop_sequence) == ("stop_sequence", "Paris")
    short = client.messages.create(model=model_id, max_tokens=3, messages=QUESTION)
    assert short.stop_reason == "max_tokens" and short.usage.output_tokens == 3
    brief = client.messages.create(
        model=model_id,
        max_tokens=12,
        system="Answer in one word.",
        messages=QUESTION,
    )

    # The system prompt reaches the template, in place of its default one (what a 135M model
    # makes of it varies with the CPU's rounding).
    def prompt(message):
        return message.usage.input_tokens + (message.usage.cache_read_input_tokens or 0)

    assert brief.content[0].text and prompt(brief) != prompt(m)


def test_stream_events_and_final_message(client, model_id) -> None:
    with client.messages.stream(model=model_id, max_tokens=64, messages=QUESTION) as stream:
        pieces = list(stream.text_stream)
        final = stream.get_final_message()
    assert "".join(pieces) == ANSWER and len(pieces) > 3
    assert final.content[0].text == ANSWER and final.stop_reason == "end_turn"
    assert final.usage.output_tokens == 7


def test_tool_round_trip_with_tool_choice_any(client, model_id) -> None:
    ask = [{"role": "user", "content": "What is the weather in Paris?"}]
    first = client.messages.create(
        model=model_id,
        max_tokens=64,
        messages=ask,
        tools=[WEATHER_TOOL],
        tool_choice={"type": "any"},
    )
    assert first.stop_reason == "tool_use"
    (call,) = [b for b in first.content if b.type == "tool_use"]
    assert call.name == "get_weather" and isinstance(call.input["city"], str)
    answer = client.messages.create(
        model=model_id,
        max_tokens=40,
        tools=[WEATHER_TOOL],
        tool_choice={"type": "none"},  # the answer now, not another call (a tiny model may loop)
        messages=[
            *ask,
            {"role": "assistant", "content": first.content},
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": call.id, "content": "Sunny, 24 C"}
                ],
            },
        ],
    )
    assert answer.content and answer.content[0].type == "text" and answer.content[0].text


def test_count_tokens_and_bad_requests(client, model_id) -> None:
    counted = client.messages.count_tokens(model=model_id, messages=QUESTION)
    with_tools = client.messages.count_tokens(
        model=model_id, messages=QUESTION, tools=[WEATHER_TOOL]
    )
    assert with_tools.input_tokens > counted.input_tokens  # the tools are in the prompt too
    created = client.messages.create(model=model_id, max_tokens=1, messages=QUESTION)
    assert (
        counted.input_tokens == created.usage.input_tokens + created.usage.cache_read_input_tokens
    )
    with pytest.raises(anthropic.BadRequestError) as info:
        client.messages.create(  # this SDK has no temperature argument; older clients send it
            model=model_id, max_tokens=5, messages=QUESTION, extra_body={"temperature": 3}
        )
    assert "temperature" in info.value.message
    with pytest.raises(anthropic.NotFoundError):
        client.messages.create(model="nope", max_tokens=5, messages=QUESTION)
    with pytest.raises(anthropic.BadRequestError) as info:
        client.messages.create(
            model=model_id, max_tokens=5, messages=[{"role": "user", "content": "word " * 9000}]
        )
    assert "8192" in info.value.message
