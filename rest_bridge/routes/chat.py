"""POST /v1/chat/completions (and /chat/completions): one gRPC Generate call per request."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import grpc
from fastapi import APIRouter, Header, Request
from fastapi.responses import JSONResponse
from sse_starlette.sse import EventSourceResponse

from osaurus.v1 import inference_pb2 as pb
from rest_bridge.errors import OpenAIError, from_grpc_error
from rest_bridge.grpc_client import clients
from rest_bridge.openai.chat import (
    FINISH_REASONS,
    CompletionIds,
    ToolCallsAccumulator,
    chunk,
    completion,
    to_generate_request,
    tool_call_delta,
    usage_chunk,
)
from rest_bridge.openai.protocol import ChatCompletionRequest

router = APIRouter()


async def _events(call: grpc.aio.UnaryStreamCall) -> AsyncIterator[pb.GenerateResponse]:
    while (message := await call.read()) is not grpc.aio.EOF:
        yield message


@router.post("/v1/chat/completions")
@router.post("/chat/completions", include_in_schema=False)
async def create_chat_completion(
    body: ChatCompletionRequest,
    request: Request,
    x_session_id: str | None = Header(default=None),
):
    call = clients(request).inference.Generate(to_generate_request(body, x_session_id))
    try:
        # Wait for the server to accept the request before answering, so that an unknown model
        # or a prompt that is too long gets its HTTP status instead of an error in a 200 stream.
        first = await call.read()
        if first is grpc.aio.EOF or not first.HasField("started"):
            raise OpenAIError("the gRPC server answered out of protocol", 502)
    except BaseException:
        call.cancel()
        raise
    ids = CompletionIds(first.started.model)
    if body.stream:
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        # With tools the reply may be only calls: no empty content in the first delta then.
        first_content = None if body.tools else ""
        events = _stream(call, ids, include_usage, request, first_content)
        return EventSourceResponse(events, sep="\n", ping=15)
    try:
        return JSONResponse(await _collect(call, ids))
    finally:
        call.cancel()  # no-op when finished; frees the engine if our client went away


async def _collect(call: grpc.aio.UnaryStreamCall, ids: CompletionIds) -> dict:
    text: list[str] = []
    calls = ToolCallsAccumulator()
    reasoning: list[str] = []
    async for message in _events(call):
        if message.HasField("delta"):
            text.append(message.delta.text)
        elif message.HasField("tool_call"):
            calls.add(message.tool_call)
        elif message.HasField("reasoning"):
            reasoning.append(message.reasoning.text)
        elif message.HasField("done"):
            return completion(ids, "".join(text), message.done, calls.calls, "".join(reasoning))
    raise OpenAIError("the gRPC stream ended without a final event", 502)


async def _stream(
    call: grpc.aio.UnaryStreamCall,
    ids: CompletionIds,
    include_usage: bool,
    request: Request,
    first_content: str | None = "",
) -> AsyncIterator[dict]:
    def data(payload: dict) -> dict:
        return {"data": json.dumps(payload, separators=(",", ":"))}

    def content_chunk(delta: dict, finish_reason: str | None = None) -> dict:
        return data(chunk(ids, delta, finish_reason, with_usage_field=include_usage))

    try:
        yield content_chunk({"role": "assistant", "content": first_content})
        async for message in _events(call):
            if message.HasField("delta") and message.delta.text:
                yield content_chunk({"content": message.delta.text})
            elif message.HasField("tool_call"):
                yield content_chunk({"tool_calls": [tool_call_delta(message.tool_call)]})
            elif message.HasField("reasoning") and message.reasoning.text:
                yield content_chunk({"reasoning_content": message.reasoning.text})
            elif message.HasField("done"):
                reason = FINISH_REASONS.get(message.done.finish_reason, "stop")
                yield content_chunk({}, reason)
                if include_usage:
                    yield data(usage_chunk(ids, message.done))
    except grpc.aio.AioRpcError as exc:
        # The stream has started, so the status line is sent: report the error in-band, once.
        yield data(from_grpc_error(exc, getattr(request.app.state, "target", "")).body())
    finally:
        # Runs on normal end and when sse-starlette cancels us because the client disconnected:
        # cancelling the call makes the server drop the request at its next decode step.
        call.cancel()
    yield {"data": "[DONE]"}
