"""Function calling through the REST bridge with the official openai client, and over gRPC."""

from __future__ import annotations

import json

import grpc
import jsonschema
import openai
import pytest

from osaurus.v1 import inference_pb2 as ipb
from osaurus.v1 import inference_pb2_grpc

WEATHER_PARAMS = {
    "type": "object",
    "properties": {
        "city": {"type": "string"},
        "unit": {"enum": ["celsius", "fahrenheit"]},
    },
    "required": ["city", "unit"],
}
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather in a city",
            "parameters": WEATHER_PARAMS,
        },
    },
    {
        "type": "function",
        "function": {
            "name": "get_time",
            "description": "Current time in a timezone",
            "parameters": {
                "type": "object",
                "properties": {"timezone": {"type": "string"}},
                "required": ["timezone"],
            },
        },
    },
]
ASK = [{"role": "user", "content": "What is the weather in Paris?"}]


@pytest.fixture(scope="module")
def client(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.http_url}/v1", api_key="any", max_retries=0)


def create(client, model_id, **kwargs):
    options = {"model": model_id, "messages": ASK, "tools": TOOLS, "max_tokens": 80}
    return client.chat.completions.create(**{**options, "temperature": 0, **kwargs})


def assert_valid(call) -> None:
    assert call.type == "function" and call.id.startswith("call_")
    assert call.function.name in {"get_weather", "get_time"}
    if call.function.name == "get_weather":
        jsonschema.validate(json.loads(call.function.arguments), WEATHER_PARAMS)


def test_required_gives_valid_calls_and_null_content(client, model_id) -> None:
    choice = create(client, model_id, tool_choice="required").choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    assert choice.message.tool_calls
    for call in choice.message.tool_calls:
        assert_valid(call)
    assert len({c.id for c in choice.message.tool_calls}) == len(choice.message.tool_calls)


def test_parallel_calls_when_asked_and_one_when_not(client, model_id) -> None:
    both = [{"role": "user", "content": "What is the weather in Paris and the time in Tokyo?"}]
    parallel = create(client, model_id, messages=both, tool_choice="required").choices[0]
    assert [c.function.name for c in parallel.message.tool_calls] == ["get_weather", "get_time"]
    single = create(
        client, model_id, messages=both, tool_choice="required", parallel_tool_calls=False
    ).choices[0]
    assert len(single.message.tool_calls) == 1
    assert_valid(single.message.tool_calls[0])


def test_a_named_function_is_the_one_called(client, model_id) -> None:
    named = {"type": "function", "function": {"name": "get_time"}}
    (call,) = create(client, model_id, tool_choice=named).choices[0].message.tool_calls
    assert call.function.name == "get_time"
    assert isinstance(json.loads(call.function.arguments)["timezone"], str)


def test_the_stream_helper_accumulates_exactly_the_non_stream_result(client, model_id) -> None:
    whole = create(client, model_id, tool_choice="required").choices[0].message
    options = {"model": model_id, "messages": ASK, "tools": TOOLS, "max_tokens": 80}
    usage = {"include_usage": True}
    with client.chat.completions.stream(
        **options, temperature=0, tool_choice="required", stream_options=usage
    ) as stream:
        deltas = [e for e in stream if e.type == "chunk"]
        final = stream.get_final_completion().choices[0]
    assert final.finish_reason == "tool_calls"
    assert deltas[-1].chunk.usage.completion_tokens > 0  # the usage chunk still comes
    assert [(c.function.name, c.function.arguments) for c in final.message.tool_calls] == [
        (c.function.name, c.function.arguments) for c in whole.tool_calls
    ]
    pieces = [
        c.chunk.choices[0].delta.tool_calls[0]
        for c in deltas
        if c.chunk.choices and c.chunk.choices[0].delta.tool_calls
    ]
    by_call: dict[int, list] = {}
    for piece in pieces:
        by_call.setdefault(piece.index, []).append(piece)
    assert sorted(by_call) == list(range(len(whole.tool_calls)))
    for header, *fragments in by_call.values():
        assert header.id and header.function.name  # the header first...
        assert len(fragments) > 2 and all(f.id is None for f in fragments)  # ...then fragments
    # No content deltas at all, not even an empty one, in a reply that is only calls.
    assert all(c.chunk.choices[0].delta.content is None for c in deltas if c.chunk.choices)


def test_the_tool_result_round_trip_ends_in_a_text_answer(client, model_id) -> None:
    first = create(client, model_id, tool_choice="required").choices[0].message
    call = first.tool_calls[0]
    history = [
        *ASK,
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": call.function.name, "arguments": call.function.arguments},
                }
            ],
        },
        {"role": "tool", "tool_call_id": call.id, "content": '{"temperature_celsius": 21}'},
    ]
    answer = create(client, model_id, messages=history, tool_choice="none").choices[0]
    assert answer.message.tool_calls is None
    assert answer.finish_reason in {"stop", "length"} and answer.message.content


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"tool_choice": {"type": "function", "function": {"name": "nope"}}}, "tool_choice"),
        ({"tools": [{"type": "retrieval"}]}, "tools[0]"),
        ({"tools": [{**TOOLS[0], "function": {"name": "x", "parameters": {"type": 7}}}]}, "tools"),
        ({"messages": [*ASK, {"role": "tool", "content": "21"}]}, "messages[1].tool_call_id"),
    ],
)
def test_bad_tool_requests_are_400_naming_the_param(client, model_id, kwargs, param) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        create(client, model_id, **kwargs)
    assert info.value.body["param"].startswith(param)


def test_a_forced_call_over_grpc_streams_header_then_arguments(channel, model_id) -> None:
    stub = inference_pb2_grpc.InferenceServiceStub(channel)
    request = ipb.GenerateRequest(
        model=model_id,
        chat=ipb.Chat(messages=[ipb.ChatMessage(role=ipb.ROLE_USER, content=ASK[0]["content"])]),
        tools=[ipb.Tool(name="get_weather", parameters=json.dumps(WEATHER_PARAMS))],
        tool_choice=ipb.ToolChoice(function_name="get_weather"),
        max_tokens=80,
    )
    events = list(stub.Generate(request, timeout=120))
    calls = [e.tool_call for e in events if e.HasField("tool_call")]
    assert calls[0].name == "get_weather" and calls[0].id.startswith("call_")
    jsonschema.validate(json.loads("".join(c.arguments for c in calls)), WEATHER_PARAMS)
    assert events[-1].done.finish_reason == ipb.FINISH_REASON_TOOL_CALLS

    request.tool_choice.function_name = "undeclared"
    with pytest.raises(grpc.RpcError) as info:
        list(stub.Generate(request, timeout=30))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "undeclared" in info.value.details()
