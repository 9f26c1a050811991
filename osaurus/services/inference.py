"""InferenceService: translate Generate/CountTokens between proto and the engine's dataclasses."""

from __future__ import annotations

import json
import math
import time
from typing import Any

import grpc

from osaurus.chat.messages import Message
from osaurus.chat.tools import Tool, ToolCall, ToolChoice
from osaurus.engine.engine import Engine
from osaurus.engine.request import (
    Finished,
    GenerationRequest,
    ReasoningChunk,
    ResponseFormat,
    SamplingParams,
    Started,
    TextChunk,
    TokenLogprob,
    ToolCallChunk,
)
from osaurus.errors import InvalidArgument
from osaurus.services.grpc_errors import maps_errors
from osaurus.v1 import inference_pb2 as pb
from osaurus.v1 import inference_pb2_grpc

MAX_TOP_LOGPROBS = 20  # OpenAI's limit
# What one request may carry, so that none costs the server more than a context's worth of
# work before it is refused. OpenAI's own limits where it has them (tools); generous elsewhere.
MAX_MESSAGES = 10_000
MAX_TOOLS = 128
MAX_STOP_STRINGS = 16
MAX_STOP_LENGTH = 1_000  # characters
REASONING_EFFORTS = ("low", "medium", "high")  # what templates that take an effort know
_ROLES = {
    pb.ROLE_SYSTEM: "system",
    pb.ROLE_USER: "user",
    pb.ROLE_ASSISTANT: "assistant",
    pb.ROLE_TOOL: "tool",
}
_FINISH = {
    "stop": pb.FINISH_REASON_STOP,
    "length": pb.FINISH_REASON_LENGTH,
    "cancelled": pb.FINISH_REASON_CANCELLED,
    "tool_calls": pb.FINISH_REASON_TOOL_CALLS,
}
_TOOL_CHOICE_MODES = {
    pb.TOOL_CHOICE_MODE_UNSPECIFIED: "auto",
    pb.TOOL_CHOICE_MODE_AUTO: "auto",
    pb.TOOL_CHOICE_MODE_NONE: "none",
    pb.TOOL_CHOICE_MODE_REQUIRED: "required",
}


def messages_from_proto(chat: pb.Chat, field: str = "chat") -> list[Message]:
    if not chat.messages:
        raise InvalidArgument(
            f"{field}.messages must hold at least one message", field=f"{field}.messages"
        )
    messages = []
    for i, m in enumerate(chat.messages):
        if m.role not in _ROLES:
            raise InvalidArgument(
                f"{field}.messages[{i}].role must be one of SYSTEM, USER, ASSISTANT, TOOL",
                field=f"{field}.messages[{i}].role",
            )
        calls = tuple(ToolCall(c.id, c.name, c.arguments or "{}") for c in m.tool_calls)
        messages.append(
            Message(
                role=_ROLES[m.role],
                content=m.content,
                name=m.name,
                tool_calls=calls,
                tool_call_id=m.tool_call_id,
            )
        )
    return messages


def tools_from_proto(
    request: pb.GenerateRequest | pb.CountTokensRequest,
) -> tuple[list[Tool], ToolChoice]:
    tools = []
    for i, t in enumerate(request.tools):
        parameters = (
            parse_json_object(t.parameters, f"tools[{i}].parameters") if t.parameters else {}
        )
        tools.append(Tool(name=t.name, description=t.description, parameters=parameters))
    choice = ToolChoice()
    if isinstance(request, pb.CountTokensRequest):
        return tools, choice
    which = request.tool_choice.WhichOneof("choice") if request.HasField("tool_choice") else None
    if which == "mode":
        choice = ToolChoice(mode=_TOOL_CHOICE_MODES.get(request.tool_choice.mode, "auto"))
    elif which == "function_name":
        choice = ToolChoice(mode="function", name=request.tool_choice.function_name)
    return tools, choice


def _check_range(
    name: str, value: float, low: float, high: float, *, low_open: bool = False
) -> None:
    too_low = value <= low if low_open else value < low
    if math.isnan(value) or too_low or value > high:
        bracket = "(" if low_open else "["
        raise InvalidArgument(
            f"sampling.{name} must be in {bracket}{low}, {high}], got {value}",
            field=f"sampling.{name}",
        )


def sampling_from_proto(s: pb.SamplingParams) -> SamplingParams:
    def opt(name: str):
        return getattr(s, name) if s.HasField(name) else None

    params = SamplingParams(
        temperature=opt("temperature"),
        top_p=opt("top_p"),
        top_k=opt("top_k"),
        min_p=opt("min_p"),
        repetition_penalty=opt("repetition_penalty"),
        seed=opt("seed"),
    )
    if params.temperature is not None:
        # OpenAI's documented range, the same on every transport.
        _check_range("temperature", params.temperature, 0.0, 2.0)
    if params.top_p is not None:
        _check_range("top_p", params.top_p, 0.0, 1.0)
    if params.top_k is not None and params.top_k < 0:
        raise InvalidArgument("sampling.top_k must be >= 0", field="sampling.top_k")
    if params.min_p is not None:
        _check_range("min_p", params.min_p, 0.0, 1.0)
    if params.repetition_penalty is not None:
        _check_range("repetition_penalty", params.repetition_penalty, 0.0, 10.0, low_open=True)
    return params


def _at_most(count: int, limit: int, what: str, field: str) -> None:
    if count > limit:
        raise InvalidArgument(f"{what}: {count} given, at most {limit}", field=field)


def check_sizes(request: pb.GenerateRequest | pb.CountTokensRequest) -> None:
    """The counts a request is held to (see MAX_*), each refused with both numbers."""
    if request.HasField("chat"):
        _at_most(len(request.chat.messages), MAX_MESSAGES, "too many messages", "chat.messages")
    _at_most(len(request.tools), MAX_TOOLS, "too many tools", "tools")
    if isinstance(request, pb.GenerateRequest):
        _at_most(len(request.stop), MAX_STOP_STRINGS, "too many stop strings", "stop")
        longest = max((len(s) for s in request.stop), default=0)
        _at_most(longest, MAX_STOP_LENGTH, "a stop string is too long (characters)", "stop")


def request_from_proto(request: pb.GenerateRequest) -> GenerationRequest:
    if not request.model:
        raise InvalidArgument("model is required", field="model")
    which = request.WhichOneof("input")
    if which is None:
        raise InvalidArgument("input is required: set chat, prompt or prompt_tokens", field="input")
    if request.HasField("max_tokens") and request.max_tokens == 0:
        raise InvalidArgument("max_tokens must be at least 1", field="max_tokens")
    if any(not s for s in request.stop):
        raise InvalidArgument("stop strings must not be empty", field="stop")
    check_sizes(request)
    if request.HasField("top_logprobs") and request.top_logprobs > MAX_TOP_LOGPROBS:
        raise InvalidArgument(
            f"top_logprobs must be at most {MAX_TOP_LOGPROBS}, got {request.top_logprobs}",
            field="top_logprobs",
        )
    if request.reasoning_effort and request.reasoning_effort not in REASONING_EFFORTS:
        raise InvalidArgument(
            f"reasoning_effort must be one of {', '.join(REASONING_EFFORTS)},"
            f" got {request.reasoning_effort!r}",
            field="reasoning_effort",
        )
    tools, choice = tools_from_proto(request)
    return GenerationRequest(
        model=request.model,
        messages=messages_from_proto(request.chat) if which == "chat" else None,
        prompt=request.prompt if which == "prompt" else None,
        prompt_token_ids=list(request.prompt_tokens.ids) if which == "prompt_tokens" else None,
        sampling=sampling_from_proto(request.sampling),
        max_tokens=request.max_tokens if request.HasField("max_tokens") else None,
        stop=list(request.stop),
        session_id=request.session_id,
        response_format=response_format_from_proto(request),
        tools=tools,
        tool_choice=choice,
        parallel_tool_calls=(
            request.parallel_tool_calls if request.HasField("parallel_tool_calls") else True
        ),
        keep_alive=keep_alive_from_proto(request),
        ignore_eos=request.ignore_eos,
        speculative=request.speculative if request.HasField("speculative") else None,
        logprobs=request.top_logprobs if request.HasField("top_logprobs") else None,
        thinking=request.thinking if request.HasField("thinking") else None,
        reasoning_effort=request.reasoning_effort,
    )


def response_format_from_proto(request: pb.GenerateRequest) -> ResponseFormat | None:
    if not request.HasField("response_format"):
        return None
    which = request.response_format.WhichOneof("format")
    if which == "json_object":
        return ResponseFormat(type="json_object")
    if which == "json_schema":
        spec = request.response_format.json_schema
        return ResponseFormat(
            type="json_schema",
            schema=parse_json_object(spec.schema, "response_format"),
            name=spec.name,
        )
    raise InvalidArgument(
        "response_format must set json_object or json_schema", field="response_format"
    )


def _logprob_to_proto(lp: TokenLogprob) -> pb.TokenLogprob:
    return pb.TokenLogprob(
        token_id=lp.token_id,
        token=lp.token,
        token_bytes=lp.token.encode(),
        logprob=lp.logprob,
        top_logprobs=[
            pb.TopLogprob(token_id=i, token=t, token_bytes=t.encode(), logprob=v)
            for i, t, v in lp.top
        ],
    )


def done_to_proto(event: Finished) -> pb.GenerationDone:
    return pb.GenerationDone(
        finish_reason=_FINISH[event.finish_reason],
        usage=pb.Usage(
            prompt_tokens=event.usage.prompt_tokens,
            completion_tokens=event.usage.completion_tokens,
            total_tokens=event.usage.total_tokens,
            cached_tokens=event.usage.cached_tokens,
        ),
        timings=pb.Timings(
            time_to_first_token_seconds=event.timings.time_to_first_token,
            prompt_tokens_per_second=event.timings.prompt_tokens_per_second,
            generation_tokens_per_second=event.timings.generation_tokens_per_second,
            total_seconds=event.timings.total_seconds,
            load_seconds=event.timings.load_seconds,
        ),
        model=event.model,
        stop_sequence=event.stop_sequence,
    )


class InferenceServicer(inference_pb2_grpc.InferenceServiceServicer):
    def __init__(self, engine: Engine):
        self.engine = engine

    @maps_errors
    async def Generate(self, request: pb.GenerateRequest, context: grpc.aio.ServicerContext):
        events = self.engine.generate(request_from_proto(request))
        try:
            async for event in events:
                if isinstance(event, TextChunk):
                    delta = pb.TextDelta(
                        text=event.text,
                        token_ids=event.token_ids,
                        logprobs=[_logprob_to_proto(lp) for lp in event.logprobs],
                    )
                    yield pb.GenerateResponse(delta=delta)
                elif isinstance(event, ReasoningChunk):
                    yield pb.GenerateResponse(reasoning=pb.ReasoningDelta(text=event.text))
                elif isinstance(event, ToolCallChunk):
                    yield pb.GenerateResponse(
                        tool_call=pb.ToolCallDelta(
                            index=event.index,
                            id=event.id,
                            name=event.name,
                            arguments=event.arguments,
                        )
                    )
                elif isinstance(event, Started):
                    started = pb.GenerationStarted(
                        model=event.model,
                        prompt_tokens=event.prompt_tokens,
                        cached_tokens=event.cached_tokens,
                    )
                    yield pb.GenerateResponse(started=started)
                else:
                    yield pb.GenerateResponse(done=done_to_proto(event))
        finally:
            # A cancelled RPC raises CancelledError here; closing the stream tells the engine.
            await events.aclose()

    @maps_errors
    async def Embed(self, request: pb.EmbedRequest, context: grpc.aio.ServicerContext):
        texts, token_ids = _embed_inputs(request)
        start = time.perf_counter()
        model, embedded, load_seconds = await self.engine.embed(
            request.model,
            texts,
            token_ids,
            truncate=request.truncate if request.HasField("truncate") else True,
            dimensions=request.dimensions,
            normalize=request.normalize if request.HasField("normalize") else None,
            keep_alive=keep_alive_from_proto(request),
        )
        return pb.EmbedResponse(
            model=model,
            embeddings=[pb.Embedding(values=v) for v in embedded.vectors],
            prompt_tokens=embedded.tokens,
            total_seconds=time.perf_counter() - start,
            load_seconds=load_seconds,
        )

    @maps_errors
    async def CountTokens(self, request: pb.CountTokensRequest, context: grpc.aio.ServicerContext):
        if not request.model:
            raise InvalidArgument("model is required", field="model")
        which = request.WhichOneof("input")
        if which is None:
            raise InvalidArgument("input is required: set chat or text", field="input")
        check_sizes(request)
        tools, _ = tools_from_proto(request)
        generation = GenerationRequest(
            model=request.model,
            messages=messages_from_proto(request.chat) if which == "chat" else None,
            prompt=request.text if which == "text" else None,
            tools=tools,
        )
        count, context_length = await self.engine.count_tokens(generation)
        return pb.CountTokensResponse(token_count=count, context_length=context_length)


def _embed_inputs(request: pb.EmbedRequest) -> tuple[list[str] | None, list[list[int]] | None]:
    if not request.model:
        raise InvalidArgument("model is required", field="model")
    if bool(request.texts) == bool(request.token_ids):
        raise InvalidArgument(
            "set either texts or token_ids, with at least one input", field="texts"
        )
    for i, text in enumerate(request.texts):
        if not text:
            raise InvalidArgument(f"texts[{i}] is empty", field="texts")
    if request.texts:
        return list(request.texts), None
    return None, [list(t.ids) for t in request.token_ids]


def keep_alive_from_proto(request: Any) -> float | None:
    """A request's optional keep_alive_seconds (negative: forever; NaN is refused)."""
    if not request.HasField("keep_alive_seconds"):
        return None
    if math.isnan(request.keep_alive_seconds):
        raise InvalidArgument(
            "keep_alive_seconds must be a number of seconds", field="keep_alive_seconds"
        )
    return request.keep_alive_seconds


def parse_json_object(text: str, field: str) -> dict[str, Any]:
    """Schemas travel as JSON text (proto has no JSON value type that keeps integers)."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidArgument(f"{field} is not valid JSON: {exc}", field=field) from exc
    if not isinstance(value, dict):
        raise InvalidArgument(f"{field} must be a JSON object", field=field)
    return value
