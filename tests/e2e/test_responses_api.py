"""The official openai SDK's Responses API against the bridge of a real server, real model."""

from __future__ import annotations

import json

import openai
import pytest
from helpers import kept_tokens

from osaurus.client import open_channel

QUESTION = "Name the capital of France."
ANSWER = "The capital of France is Paris."
WEATHER_TOOL = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city.",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}


@pytest.fixture(scope="module")
def client(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.http_url}/v1", api_key="any", max_retries=0)


def test_text_stored_retrieved_and_deleted(client, model_id) -> None:
    r = client.responses.create(model=model_id, input=QUESTION, temperature=0)
    assert r.object == "response" and r.status == "completed" and r.id.startswith("resp_")
    assert r.output_text == ANSWER and r.usage.output_tokens == 7
    assert client.responses.retrieve(r.id).output_text == ANSWER
    client.responses.delete(r.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(r.id)
    short = client.responses.create(
        model=model_id, input=QUESTION, temperature=0, max_output_tokens=3, store=False
    )
    assert short.status == "incomplete" and short.incomplete_details.reason == "max_output_tokens"
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(short.id)  # store=False: kept nowhere


def test_stream_events_in_order(client, model_id) -> None:
    events = list(
        client.responses.create(model=model_id, input=QUESTION, temperature=0, stream=True)
    )
    kinds = [e.type for e in events]
    assert kinds[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert kinds[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text == ANSWER == events[-1].response.output_text


def test_function_tool_round_trip_and_json_schema(client, model_id) -> None:
    first = client.responses.create(
        model=model_id,
        input="What is the weather in Paris?",
        tools=[WEATHER_TOOL],
        tool_choice="required",
        temperature=0,
    )
    (call,) = [item for item in first.output if item.type == "function_call"]
    assert call.name == "get_weather" and isinstance(json.loads(call.arguments)["city"], str)
    answer = client.responses.create(
        model=model_id,
        previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "Sunny, 24 C"}],
        tools=[WEATHER_TOOL],
        tool_choice="none",
        temperature=0,
        max_output_tokens=40,
    )
    assert answer.output_text and answer.previous_response_id == first.id
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
        "additionalProperties": False,
    }
    structured = client.responses.create(
        model=model_id,
        input="Give the capital of France as JSON.",
        text={"format": {"type": "json_schema", "name": "capital", "schema": schema}},
        temperature=0,
        max_output_tokens=40,
    )
    assert isinstance(json.loads(structured.output_text)["city"], str)


def test_previous_response_id_continues_on_the_kv_cache(client, model_id, server) -> None:
    r = client.responses.create(
        model=model_id, input="Hi! My name is Ada.", temperature=0, max_output_tokens=12
    )
    cached = []
    for turn in ("What is my name?", "Say it again.", "And once more.", "Thanks!"):
        r = client.responses.create(
            model=model_id,
            input=turn,
            previous_response_id=r.id,
            temperature=0,
            max_output_tokens=12,
        )
        cached.append(r.usage.input_tokens_details.cached_tokens)
        assert r.usage.input_tokens > cached[-1] > 0  # the history was not prefilled again
    assert cached == sorted(cached)  # each turn reuses all that came before
    with open_channel(server.grpc_target) as channel:
        assert kept_tokens(channel, f"responses-{_first_id(client, r)}") >= cached[-1]
    with pytest.raises(openai.NotFoundError):
        client.responses.create(model=model_id, input="x", previous_response_id="resp_nope")


def _first_id(client: openai.OpenAI, response) -> str:
    """The chain's first response: its session is named after it."""
    while response.previous_response_id:
        response = client.responses.retrieve(response.previous_response_id)
    return response.id


def test_logprobs_on_the_text_and_its_stream(client, model_id) -> None:
    asked = {"include": ["message.output_text.logprobs"], "top_logprobs": 2, "temperature": 0}
    r = client.responses.create(model=model_id, input=QUESTION, **asked)
    (part,) = r.output[0].content
    assert part.text == ANSWER
    assert "".join(lp.token for lp in part.logprobs) == ANSWER
    for lp in part.logprobs:
        assert lp.logprob <= 0 and len(lp.top_logprobs) == 2
        assert lp.top_logprobs[0].token == lp.token  # greedy: the likeliest was taken
    plain = client.responses.create(model=model_id, input=QUESTION, temperature=0)
    assert plain.output[0].content[0].logprobs == []
    events = list(client.responses.create(model=model_id, input=QUESTION, stream=True, **asked))
    deltas = [e for e in events if e.type == "response.output_text.delta"]
    streamed = [lp.token for e in deltas for lp in e.logprobs]
    assert "".join(streamed) == ANSWER == "".join(e.delta for e in deltas)
