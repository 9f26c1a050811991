"""InferenceService over a real grpc.aio server with a fake engine: validation, error statuses,
event translation and cancellation. (The real engine is covered by tests/e2e.)"""

from __future__ import annotations

import asyncio

import grpc
import pytest
from fake_engine import FakeEngine
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from osaurus.services.inference import InferenceServicer
from osaurus.v1 import inference_pb2 as pb
from osaurus.v1 import inference_pb2_grpc


@pytest.fixture
async def stub_and_engine():
    engine = FakeEngine()
    server = grpc.aio.server()
    inference_pb2_grpc.add_InferenceServiceServicer_to_server(InferenceServicer(engine), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    yield inference_pb2_grpc.InferenceServiceStub(channel), engine
    await channel.close()
    await server.stop(0)


def _chat(text: str = "hi", role: int = pb.ROLE_USER) -> pb.Chat:
    return pb.Chat(messages=[pb.ChatMessage(role=role, content=text)])


async def _error(call) -> tuple[grpc.StatusCode, str, str, dict]:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        async for _ in call:
            pass
    status = rpc_status.from_call(info.value)
    detail = error_details_pb2.ErrorInfo()
    assert status is not None and status.details[0].Unpack(detail)
    assert detail.domain == "osaurus"
    return info.value.code(), info.value.details(), detail.reason, dict(detail.metadata)


async def test_streams_deltas_then_done(stub_and_engine) -> None:
    stub, engine = stub_and_engine
    request = pb.GenerateRequest(model="m", chat=_chat(), stop=["\n"], max_tokens=7)
    request.sampling.temperature = 0.0
    events = [e async for e in stub.Generate(request)]
    assert (events[0].started.model, events[0].started.prompt_tokens) == ("m", 5)
    assert [e.delta.text for e in events[1:3]] == ["Hel", "lo"]
    assert list(events[2].delta.token_ids) == [11, 12]
    done = events[3].done
    assert done.finish_reason == pb.FINISH_REASON_STOP
    assert (done.usage.prompt_tokens, done.usage.completion_tokens, done.usage.total_tokens) == (
        5,
        3,
        8,
    )
    sent = engine.requests[0]
    assert sent.sampling.temperature == 0.0 and sent.sampling.top_p is None  # presence kept
    assert (sent.max_tokens, sent.stop, sent.messages[0].role) == (7, ["\n"], "user")


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (pb.GenerateRequest(chat=_chat()), "model"),
        (pb.GenerateRequest(model="m"), "input"),
        (pb.GenerateRequest(model="m", chat=pb.Chat()), "chat.messages"),
        (
            pb.GenerateRequest(model="m", chat=_chat(role=pb.ROLE_UNSPECIFIED)),
            "chat.messages[0].role",
        ),
        (pb.GenerateRequest(model="m", prompt="x", max_tokens=0), "max_tokens"),
        (pb.GenerateRequest(model="m", prompt="x", stop=[""]), "stop"),
        (
            pb.GenerateRequest(model="m", prompt="x", sampling=pb.SamplingParams(temperature=-1)),
            "sampling.temperature",
        ),
        (
            pb.GenerateRequest(model="m", prompt="x", sampling=pb.SamplingParams(temperature=2.5)),
            "sampling.temperature",
        ),
        (
            pb.GenerateRequest(model="m", prompt="x", sampling=pb.SamplingParams(top_p=1.5)),
            "sampling.top_p",
        ),
        (
            pb.GenerateRequest(
                model="m", prompt="x", sampling=pb.SamplingParams(repetition_penalty=0)
            ),
            "sampling.repetition_penalty",
        ),
        (pb.GenerateRequest(model="m", prompt="x", reasoning_effort="max"), "reasoning_effort"),
        (pb.GenerateRequest(model="m", prompt="x", stop=["s"] * 17), "stop"),
        (pb.GenerateRequest(model="m", prompt="x", stop=["s" * 1001]), "stop"),
        (
            pb.GenerateRequest(
                model="m", prompt="x", tools=[pb.Tool(name=f"t{i}") for i in range(129)]
            ),
            "tools",
        ),
        (
            pb.GenerateRequest(
                model="m",
                chat=pb.Chat(messages=[pb.ChatMessage(role=pb.ROLE_USER, content="x")] * 10_001),
            ),
            "chat.messages",
        ),
    ],
)
async def test_malformed_requests_are_invalid_argument_naming_the_field(
    stub_and_engine, request_: pb.GenerateRequest, field: str
) -> None:
    stub, engine = stub_and_engine
    code, message, _reason, metadata = await _error(stub.Generate(request_))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert metadata["field"] == field and field.split(".")[-1].split("[")[0] in message
    assert engine.requests == []  # never reached the engine


async def test_core_errors_map_to_status_and_reason(stub_and_engine) -> None:
    stub, _ = stub_and_engine
    code, _, reason, _ = await _error(
        stub.Generate(pb.GenerateRequest(model="missing", prompt="x"))
    )
    assert (code, reason) == (grpc.StatusCode.NOT_FOUND, "MODEL_NOT_FOUND")
    code, _, reason, _ = await _error(stub.Generate(pb.GenerateRequest(model="long", prompt="x")))
    assert (code, reason) == (grpc.StatusCode.INVALID_ARGUMENT, "CONTEXT_LENGTH_EXCEEDED")


async def test_client_cancel_closes_the_engine_stream(stub_and_engine) -> None:
    stub, engine = stub_and_engine
    call = stub.Generate(pb.GenerateRequest(model="endless", prompt="x"))
    assert (await call.read()).HasField("started")
    assert (await call.read()).delta.text == "x"
    call.cancel()
    await asyncio.wait_for(engine.closed.wait(), timeout=5)


async def test_count_tokens(stub_and_engine) -> None:
    stub, _ = stub_and_engine
    response = await stub.CountTokens(pb.CountTokensRequest(model="m", text="abc"))
    assert (response.token_count, response.context_length) == (42, 8192)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.CountTokens(pb.CountTokensRequest(model="m"))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_reasoning_and_tool_call_events_become_their_own_messages(stub_and_engine) -> None:
    stub, _ = stub_and_engine
    events = [e async for e in stub.Generate(pb.GenerateRequest(model="thinker", chat=_chat()))]
    assert [e.WhichOneof("event") for e in events] == [
        "started",
        "reasoning",
        "delta",
        "delta",
        "done",
    ]
    assert events[1].reasoning.text == "Hmm."

    events = [e async for e in stub.Generate(pb.GenerateRequest(model="caller", chat=_chat()))]
    calls = [e.tool_call for e in events if e.HasField("tool_call")]
    assert (calls[0].id, calls[0].name, calls[1].arguments) == (
        "call_1",
        "get_time",
        '{"tz": "UTC"}',
    )
    assert events[-1].done.finish_reason == pb.FINISH_REASON_TOOL_CALLS


async def test_tools_and_tool_choice_reach_the_engine(stub_and_engine) -> None:
    stub, engine = stub_and_engine
    request = pb.GenerateRequest(
        model="m",
        chat=pb.Chat(
            messages=[
                pb.ChatMessage(role=pb.ROLE_USER, content="time?"),
                pb.ChatMessage(
                    role=pb.ROLE_ASSISTANT,
                    tool_calls=[pb.ToolCall(id="call_1", name="get_time", arguments="{}")],
                ),
                pb.ChatMessage(role=pb.ROLE_TOOL, content="12:00", tool_call_id="call_1"),
            ]
        ),
        tools=[pb.Tool(name="get_time", parameters='{"type": "object"}')],
        tool_choice=pb.ToolChoice(mode=pb.TOOL_CHOICE_MODE_REQUIRED),
    )
    [e async for e in stub.Generate(request)]
    seen = engine.requests[-1]
    assert [t.name for t in seen.tools] == ["get_time"] and seen.tools[0].parameters == {
        "type": "object"
    }
    assert seen.tool_choice.mode == "required"
    assert seen.messages[1].tool_calls[0].name == "get_time"
    assert seen.messages[2].tool_call_id == "call_1"

    assert seen.speculative is None  # unset: the server's setting
    [e async for e in stub.Generate(pb.GenerateRequest(model="m", prompt="x", speculative=False))]
    assert engine.requests[-1].speculative is False

    request.tools[0].parameters = "[not json"
    code, _, _, metadata = await _error(stub.Generate(request))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and metadata["field"] == "tools[0].parameters"
