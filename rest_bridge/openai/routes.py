"""OpenAI's routes: POST /v1/chat/completions, POST /v1/embeddings and GET /v1/models[/{id}],
each one gRPC call (and the same without /v1, as other OpenAI-compatible servers answer)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
from fastapi import APIRouter, Header, Request
from fastapi.responses import JSONResponse
from sse_starlette.sse import EventSourceResponse

from osaurus.v1 import model_pb2
from rest_bridge.errors import BridgeError, from_grpc_error, grpc_target
from rest_bridge.generation import Generation, start_generation
from rest_bridge.grpc_client import clients
from rest_bridge.openai import completions
from rest_bridge.openai import response_models as m
from rest_bridge.openai.chat import (
    FINISH_REASONS,
    CompletionIds,
    chunk,
    completion,
    to_generate_request,
    tool_call_delta,
    usage_chunk,
)
from rest_bridge.openai.embeddings import embedding_list, to_embed_request
from rest_bridge.openai.errors import OpenAIRoute, error_body
from rest_bridge.openai.protocol import (
    ChatCompletionRequest,
    CompletionRequest,
    EmbeddingRequest,
)
from rest_bridge.openapi import answers
from rest_bridge.sse import data_event

router = APIRouter(route_class=OpenAIRoute)


@router.post(
    "/v1/chat/completions", **answers(m.ChatCompletion, m.ChatCompletionChunk, done_marker=True)
)
@router.post("/chat/completions", include_in_schema=False)
async def create_chat_completion(
    body: ChatCompletionRequest,
    request: Request,
    x_session_id: str | None = Header(default=None),
):
    request_pb = to_generate_request(body, x_session_id)
    generation = await start_generation(clients(request).inference, request_pb)
    ids = CompletionIds(generation.started.model)
    if body.stream:
        include_usage = body.include_usage()
        # With tools the reply may be only calls: no empty content in the first delta then.
        first_content = None if body.tools else ""
        events = _stream(generation, ids, include_usage, request, first_content, body.logprobs)
        return EventSourceResponse(events, sep="\n", ping=15)
    try:
        return JSONResponse(completion(ids, await generation.collect(), body.logprobs))
    finally:
        generation.cancel()  # frees the engine if our client went away


async def _stream(
    generation: Generation,
    ids: CompletionIds,
    include_usage: bool,
    request: Request,
    first_content: str | None = "",
    logprobs_wanted: bool = False,
) -> AsyncIterator[dict]:
    def content_chunk(delta: dict, finish_reason: str | None = None, logprobs=None) -> dict:
        return data_event(chunk(ids, delta, finish_reason, include_usage, logprobs))

    try:
        yield content_chunk({"role": "assistant", "content": first_content})
        async for message in generation.events():
            if message.HasField("delta") and message.delta.text:
                logprobs = list(message.delta.logprobs) if logprobs_wanted else None
                yield content_chunk({"content": message.delta.text}, None, logprobs)
            elif message.HasField("tool_call"):
                yield content_chunk({"tool_calls": [tool_call_delta(message.tool_call)]})
            elif message.HasField("reasoning") and message.reasoning.text:
                yield content_chunk({"reasoning_content": message.reasoning.text})
            elif message.HasField("done"):
                reason = FINISH_REASONS.get(message.done.finish_reason, "stop")
                yield content_chunk({}, reason)
                if include_usage:
                    yield data_event(usage_chunk(ids, message.done))
    except grpc.aio.AioRpcError as exc:
        # The stream has started, so the status line is sent: report the error in-band, once.
        yield data_event(error_body(from_grpc_error(exc, grpc_target(request))))
    finally:
        # Runs on normal end and when sse-starlette cancels us because the client disconnected:
        # cancelling the call makes the server drop the request at its next decode step.
        generation.cancel()
    yield {"data": "[DONE]"}


@router.post("/v1/completions", **answers(m.Completion, m.Completion, done_marker=True))
@router.post("/completions", include_in_schema=False)
async def create_completion(body: CompletionRequest, request: Request):
    prompts = body.prompts()
    if body.stream and len(prompts) > 1:
        raise BridgeError("a streamed completion takes one prompt", field="prompt")
    generations: list[Generation] = []
    try:
        # Started one after the other, they decode together: the engine batches them.
        for prompt in prompts:
            generation_request = completions.to_generate_request(body, prompt)
            generations.append(
                await start_generation(clients(request).inference, generation_request)
            )
    except BaseException:
        for g in generations:
            g.cancel()
        raise
    ids = CompletionIds(generations[0].started.model, prefix="cmpl")
    echoed = [p if body.echo and isinstance(p, str) else "" for p in prompts]
    if body.stream:
        include_usage = body.include_usage()
        events = _stream_completion(generations[0], ids, echoed[0], body, include_usage, request)
        return EventSourceResponse(events, sep="\n", ping=15)
    try:
        results = await asyncio.gather(*(g.collect() for g in generations))
    finally:
        for g in generations:
            g.cancel()
    want = body.logprobs is not None
    choices = [
        completions.choice(
            i, echoed[i] + r.text, r.done, r.logprobs if want else None, len(echoed[i])
        )
        for i, r in enumerate(results)
    ]
    out = completions.completion_object(ids, choices)
    out["usage"] = completions.usage_of([r.done for r in results])
    return JSONResponse(out)


async def _stream_completion(
    generation: Generation,
    ids: CompletionIds,
    echoed: str,
    body: CompletionRequest,
    include_usage: bool,
    request: Request,
) -> AsyncIterator[dict]:
    want = body.logprobs is not None
    offset = len(echoed)
    try:
        if echoed:
            yield data_event(
                completions.completion_object(ids, [completions.choice(0, echoed, None, None)])
            )
        async for message in generation.events():
            if message.HasField("delta") and message.delta.text:
                logprobs = list(message.delta.logprobs) if want else None
                piece = completions.choice(0, message.delta.text, None, logprobs, offset)
                offset += len(message.delta.text)
                yield data_event(completions.completion_object(ids, [piece]))
            elif message.HasField("done"):
                final = completions.choice(0, "", message.done, [] if want else None, offset)
                yield data_event(completions.completion_object(ids, [final]))
                if include_usage:
                    usage = completions.completion_object(ids, [])
                    usage["usage"] = completions.usage_of([message.done])
                    yield data_event(usage)
    except grpc.aio.AioRpcError as exc:
        yield data_event(error_body(from_grpc_error(exc, grpc_target(request))))
    finally:
        generation.cancel()
    yield {"data": "[DONE]"}


@router.post("/v1/embeddings", **answers(m.EmbeddingList))
@router.post("/embeddings", include_in_schema=False)
async def create_embeddings(body: EmbeddingRequest, request: Request) -> dict:
    reply = await clients(request).inference.Embed(to_embed_request(body))
    return embedding_list(reply, body.encoding_format)


def _model_json(model: model_pb2.Model) -> dict:
    created = model.modified_time.seconds  # OpenAI's `created`: when the model came to be here
    return {"id": model.id, "object": "model", "created": created, "owned_by": "osaurus"}


@router.get("/v1/models", **answers(m.ModelList))
@router.get("/models", include_in_schema=False)
async def list_models(request: Request) -> dict:
    response = await clients(request).models.ListModels(model_pb2.ListModelsRequest())
    return {"object": "list", "data": [_model_json(m) for m in response.models]}


@router.get("/v1/models/{model_id:path}", **answers(m.Model))
@router.get("/models/{model_id:path}", include_in_schema=False)
async def retrieve_model(model_id: str, request: Request) -> dict:
    response = await clients(request).models.GetModel(model_pb2.GetModelRequest(id=model_id))
    return _model_json(response.model)
