"""One Generate call as every API family uses it: start it, wait for the server to accept the
request, then read its events, or collect them into one result.

Waiting for `GenerationStarted` before answering is what gives an unknown model or a prompt that
is too long its HTTP status, instead of an error inside a 200 stream.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Literal, cast

import grpc

from osaurus.v1 import inference_pb2 as pb
from osaurus.v1 import inference_pb2_grpc
from rest_bridge.errors import BridgeError

# OpenAI's reasoning efforts (chat completions' reasoning_effort, Responses' reasoning.effort).
ReasoningEffort = Literal["none", "minimal", "low", "medium", "high"]


def set_thinking(request: pb.GenerateRequest, think: bool | str | None) -> None:
    """Whether (and how hard) a reasoning model thinks, from what a family's request says: a
    switch, or an effort. OpenAI's "none" and "minimal" turn thinking off (the nearest a
    template's switch gets); "low" to "high" turn it on at that effort. None: the model's
    default."""
    if think is None:
        return
    if isinstance(think, bool):
        request.thinking = think
    elif think in ("none", "minimal"):
        request.thinking = False
    else:
        request.thinking = True
        request.reasoning_effort = think


def add_tool(
    request: pb.GenerateRequest,
    name: str,
    description: str | None,
    parameters: dict[str, Any] | None,
) -> None:
    """A function tool, as every family declares one: its schema travels as JSON text."""
    schema = json.dumps(parameters) if parameters is not None else ""
    request.tools.add(name=name, description=description or "", parameters=schema)


def sampling(
    temperature: float | None = None,
    top_p: float | None = None,
    top_k: int | None = None,
    min_p: float | None = None,
    repetition_penalty: float | None = None,
    seed: int | None = None,
) -> pb.SamplingParams:
    """The contract's sampling from what a family's request set: unset stays unset (the
    server's default), a negative seed wraps (uint64 on the wire)."""
    given: dict[str, Any] = {
        "temperature": temperature,
        "top_p": top_p,
        "top_k": top_k,
        "min_p": min_p,
        "repetition_penalty": repetition_penalty,
        "seed": None if seed is None else seed & 0xFFFFFFFFFFFFFFFF,
    }
    return pb.SamplingParams(**{k: v for k, v in given.items() if v is not None})


@dataclass
class GeneratedToolCall:
    id: str
    name: str
    arguments: str  # JSON text, as the server streamed it

    def parsed_arguments(self) -> dict[str, Any]:
        """The arguments as an object, for the APIs that send them so (Ollama, Anthropic);
        {} if the text is not a JSON object (the server's grammar makes that rare)."""
        try:
            value = json.loads(self.arguments or "{}")
        except json.JSONDecodeError:
            return {}
        return value if isinstance(value, dict) else {}


class ToolCallsAccumulator:
    """Joins streamed call pieces into whole calls: the first piece of a call carries its id
    and name, later ones more argument text."""

    def __init__(self) -> None:
        self.calls: list[GeneratedToolCall] = []

    def add(self, delta: pb.ToolCallDelta) -> None:
        if delta.id:
            self.calls.append(GeneratedToolCall(delta.id, delta.name, delta.arguments))
        elif self.calls:
            self.calls[delta.index].arguments += delta.arguments


@dataclass
class GenerationResult:
    """A whole generation, for the non-streaming answers."""

    done: pb.GenerationDone
    text: str = ""
    reasoning: str = ""
    tool_calls: list[GeneratedToolCall] = field(default_factory=list)
    logprobs: list[pb.TokenLogprob] = field(default_factory=list)  # when asked for


class Generation:
    """A Generate call the server has accepted: `started` is its first event."""

    def __init__(self, call: grpc.aio.UnaryStreamCall, started: pb.GenerationStarted):
        self.call = call
        self.started = started

    async def events(self) -> AsyncIterator[pb.GenerateResponse]:
        """The events after `started`; a gRPC error after the start is raised from here."""
        while (message := await self.call.read()) is not grpc.aio.EOF:
            yield cast(pb.GenerateResponse, message)  # the stubs type EOF as object

    async def collect(self) -> GenerationResult:
        text: list[str] = []
        reasoning: list[str] = []
        calls = ToolCallsAccumulator()
        logprobs: list[pb.TokenLogprob] = []
        async for message in self.events():
            if message.HasField("delta"):
                text.append(message.delta.text)
                logprobs.extend(message.delta.logprobs)
            elif message.HasField("reasoning"):
                reasoning.append(message.reasoning.text)
            elif message.HasField("tool_call"):
                calls.add(message.tool_call)
            elif message.HasField("done"):
                return GenerationResult(
                    message.done, "".join(text), "".join(reasoning), calls.calls, logprobs
                )
        raise BridgeError("the gRPC stream ended without a final event", 502)

    def cancel(self) -> None:
        """Frees the engine slot at its next step; a no-op once the call has finished."""
        self.call.cancel()


async def start_generation(
    stub: inference_pb2_grpc.InferenceServiceStub, request: pb.GenerateRequest
) -> Generation:
    call = stub.Generate(request)
    try:
        first = await call.read()
        if first is grpc.aio.EOF or not first.HasField("started"):
            raise BridgeError("the gRPC server answered out of protocol", 502)
    except BaseException:
        call.cancel()
        raise
    return Generation(call, first.started)
