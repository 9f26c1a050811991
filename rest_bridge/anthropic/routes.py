"""Anthropic's routes: POST /v1/messages (one message, or its event stream) and
POST /v1/messages/count_tokens. The x-api-key and anthropic-version headers are accepted."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import grpc
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from sse_starlette.sse import EventSourceResponse

from osaurus.v1 import inference_pb2 as pb
from rest_bridge.anthropic import response_models as m
from rest_bridge.anthropic.errors import AnthropicRoute, error_body
from rest_bridge.anthropic.messages import (
    StreamWriter,
    chat,
    message,
    new_message_id,
    to_generate_request,
)
from rest_bridge.anthropic.protocol import CountTokensRequest, MessagesRequest
from rest_bridge.errors import from_grpc_error, grpc_target
from rest_bridge.generation import Generation, start_generation
from rest_bridge.grpc_client import clients
from rest_bridge.openapi import answers
from rest_bridge.sse import named_event

router = APIRouter(route_class=AnthropicRoute)


@router.post("/v1/messages", **answers(m.AnthropicMessageResponse, m.AnthropicStreamEvent))
async def create_message(body: MessagesRequest, request: Request) -> Response:
    generation = await start_generation(clients(request).inference, to_generate_request(body))
    thinking = body.thinking is not None and body.thinking.type == "enabled"
    message_id, model = new_message_id(), generation.started.model
    if body.stream:
        writer = StreamWriter(message_id, model, generation.started.prompt_tokens, thinking)
        return EventSourceResponse(_events(generation, writer, request), sep="\n", ping=10)
    try:
        result = await generation.collect()
    finally:
        generation.cancel()
    return JSONResponse(message(message_id, model, result, thinking))


async def _events(
    generation: Generation, writer: StreamWriter, request: Request
) -> AsyncIterator[dict[str, str]]:
    try:
        yield named_event(writer.start)
        yield named_event({"type": "ping"})
        async for event in generation.events():
            for out in writer.feed(event):
                yield named_event(out)
    except grpc.aio.AioRpcError as exc:
        # The stream has begun: the error is an `error` event, as Anthropic sends it.
        yield named_event(error_body(from_grpc_error(exc, grpc_target(request))))
    finally:
        generation.cancel()  # the client went away, or we are done


@router.post("/v1/messages/count_tokens", **answers(m.AnthropicTokenCount))
async def count_tokens(body: CountTokensRequest, request: Request) -> dict[str, int]:
    count = pb.CountTokensRequest(model=body.model, chat=chat(body))
    for tool in body.tools or []:
        schema = json.dumps(tool.input_schema)
        count.tools.add(name=tool.name, description=tool.description or "", parameters=schema)
    reply = await clients(request).inference.CountTokens(count)
    return {"input_tokens": reply.token_count}
