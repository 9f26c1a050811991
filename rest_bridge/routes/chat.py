"""POST /v1/chat/completions (and /chat/completions): one gRPC Generate call per request."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import grpc
from fastapi import APIRouter, Header, Request
from fastapi.responses import JSONResponse
from sse_starlette.sse import EventSourceResponse

from osaurus.v1 import inference_pb2 as pb
from rest_bridge.errors import from_grpc_error
from rest_bridge.grpc_client import clients
from rest_bridge.openai.chat import (
    FINISH_REASONS,
    CompletionIds,
    chunk,
    completion,
    to_generate_request,
    usage_chunk,
)
from rest_bridge.openai.protocol import ChatCompletionRequest

router = APIRouter()


async def _next(call: grpc.aio.UnaryStreamCall) -> pb.GenerateResponse | None:
    message = await call.read()
    return None if message is grpc.aio.EOF else message


@router.post("/v1/chat/completions")
@router.post("/chat/completions", include_in_schema=False)
async def create_chat_completion(
    body: ChatCompletionRequest,
    request: Request,
    x_session_id: str | None = Header(default=None),
):
    call = clients(request).inference.Generate(to_generate_request(body, x_session_id))
    try:
        # Read the first event before answering, so that an unknown model or a prompt that is
        # too long gets its HTTP status instead of an error inside a 200 stream.
        first = await _next(call)
    except BaseException:
        call.cancel()
        raise
    ids = CompletionIds(body.model)
    if body.stream:
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        return EventSourceResponse(
            _stream(call, first, ids, include_usage, request), sep="\n", ping=15
        )
    return JSONResponse(await _collect(call, first, ids))


async def _collect(
    call: grpc.aio.UnaryStreamCall, first: pb.GenerateResponse | None, ids: CompletionIds
) -> dict:
    text: list[str] = []
    message = first
    try:
        while message is not None:
            if message.HasField("delta"):
                text.append(message.delta.text)
            else:
                ids.model = message.done.model or ids.model
                return completion(ids, "".join(text), message.done)
            message = await _next(call)
    finally:
        call.cancel()  # no-op when finished; frees the engine if our client went away
    raise RuntimeError("the gRPC stream ended without a final event")


async def _stream(
    call: grpc.aio.UnaryStreamCall,
    first: pb.GenerateResponse | None,
    ids: CompletionIds,
    include_usage: bool,
    request: Request,
) -> AsyncIterator[dict]:
    def data(payload: dict) -> dict:
        return {"data": json.dumps(payload, separators=(",", ":"))}

    try:
        yield data(chunk(ids, {"role": "assistant", "content": ""}, with_usage_field=include_usage))
        message = first
        while message is not None:
            if message.HasField("delta"):
                if message.delta.text:
                    yield data(
                        chunk(ids, {"content": message.delta.text}, with_usage_field=include_usage)
                    )
            else:
                done = message.done
                ids.model = done.model or ids.model
                reason = FINISH_REASONS.get(done.finish_reason, "stop")
                yield data(chunk(ids, {}, reason, with_usage_field=include_usage))
                if include_usage:
                    yield data(usage_chunk(ids, done))
                break
            message = await _next(call)
    except grpc.aio.AioRpcError as exc:
        # The stream has started, so the status line is sent: report the error in-band, once.
        err = from_grpc_error(exc, getattr(request.app.state, "target", ""))
        yield data(err.body())
    finally:
        # Runs on normal end and when sse-starlette cancels us because the client disconnected:
        # cancelling the call makes the server drop the request at its next decode step.
        call.cancel()
    yield {"data": "[DONE]"}
