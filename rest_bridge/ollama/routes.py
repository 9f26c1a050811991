"""Ollama's routes under /api, each over the same gRPC calls as every other client's.

Streams are NDJSON (one JSON object a line), Ollama's default; `"stream": false` answers one
object. An error after a stream started is one `{"error": ...}` line, as Ollama sends it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator
from typing import Any

import grpc
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse

from osaurus.durations import parse_duration
from osaurus.v1 import inference_pb2 as pb
from osaurus.v1 import model_pb2
from rest_bridge.errors import BridgeError, from_grpc_error, grpc_target
from rest_bridge.generation import Generation, ToolCallsAccumulator, start_generation
from rest_bridge.grpc_client import clients
from rest_bridge.ollama import models as translate
from rest_bridge.ollama import response_models as m
from rest_bridge.ollama.chat import (
    chat_request,
    done_fields,
    generate_request,
    model_id,
    now,
    ollama_name,
    tool_call_json,
)
from rest_bridge.ollama.errors import OllamaRoute, error_body
from rest_bridge.ollama.protocol import (
    ChatRequest,
    CopyRequest,
    EmbeddingsRequest,
    EmbedRequest,
    GenerateRequest,
    GenerationBase,
    ModelRequest,
)
from rest_bridge.openapi import NDJSON, answers

router = APIRouter(prefix="/api", route_class=OllamaRoute)
# The Ollama API level these routes follow; clients gate features on /api/version.
OLLAMA_API_VERSION = "0.12.6"


def _line(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode() + b"\n"


async def _check_num_ctx(body: GenerationBase, request: Request) -> None:
    wanted = body.options.num_ctx if body.options else None
    if wanted is None:
        return
    reply = await clients(request).models.GetModel(
        model_pb2.GetModelRequest(id=model_id(body.model))
    )
    if wanted > reply.model.context_length:
        raise BridgeError(
            f"options.num_ctx {wanted} is more than {reply.model.id}'s context length "
            f"{reply.model.context_length}",
            field="options.num_ctx",
        )


async def _load_or_unload(
    body: GenerationBase, request: Request, text_field: dict[str, Any]
) -> dict[str, Any]:
    """A request with nothing to generate loads the model, or with keep_alive 0 unloads it."""
    stubs, name = clients(request), model_id(body.model)
    keep_alive = body.keep_alive_seconds()
    if keep_alive == 0:
        await stubs.models.GetModel(model_pb2.GetModelRequest(id=name))  # 404 for a wrong name
        await stubs.models.UnloadModel(model_pb2.UnloadModelRequest(id=name))
        reason = "unload"
    else:
        load = model_pb2.LoadModelRequest(id=name)
        if keep_alive is not None:
            load.keep_alive_seconds = keep_alive
        await stubs.models.LoadModel(load)
        reason = "load"
    return {
        "model": ollama_name(name),
        "created_at": now(),
        **text_field,
        "done": True,
        "done_reason": reason,
    }


@router.post("/chat", **answers(m.OllamaChatResponse, m.OllamaChatResponse, NDJSON))
async def chat(body: ChatRequest, request: Request) -> Response:
    if not body.messages:
        empty = {"message": {"role": "assistant", "content": ""}}
        return JSONResponse(await _load_or_unload(body, request, empty))
    await _check_num_ctx(body, request)
    generation = await start_generation(clients(request).inference, chat_request(body))
    shape = _Shape(ollama_name(generation.started.model), chat=True, think=body.think is not False)
    return await _answer(generation, shape, body.stream, request)


@router.post("/generate", **answers(m.OllamaGenerateResponse, m.OllamaGenerateResponse, NDJSON))
async def generate(body: GenerateRequest, request: Request) -> Response:
    if not body.prompt and not body.raw:
        return JSONResponse(await _load_or_unload(body, request, {"response": ""}))
    await _check_num_ctx(body, request)
    generation = await start_generation(clients(request).inference, generate_request(body))
    shape = _Shape(ollama_name(generation.started.model), chat=False, think=body.think is not False)
    return await _answer(generation, shape, body.stream, request)


class _Shape:
    """How /api/chat and /api/generate objects look: text in message.content or in response."""

    def __init__(self, model: str, chat: bool, think: bool):
        self.model, self.chat, self.think = model, chat, think

    def piece(
        self, text: str = "", thinking: str = "", calls: list | None = None
    ) -> dict[str, Any]:
        out: dict[str, Any] = {"model": self.model, "created_at": now()}
        if self.chat:
            message: dict[str, Any] = {"role": "assistant", "content": text}
            if thinking:
                message["thinking"] = thinking
            if calls:
                message["tool_calls"] = calls
            out["message"] = message
        else:
            out["response"] = text
            if thinking:
                out["thinking"] = thinking
        out["done"] = False
        return out


async def _answer(
    generation: Generation, shape: _Shape, stream: bool, request: Request
) -> Response:
    if stream:
        return StreamingResponse(_stream(generation, shape, request), media_type=NDJSON)
    try:
        result = await generation.collect()
    finally:
        generation.cancel()
    calls = [tool_call_json(c) for c in result.tool_calls]
    reasoning = result.reasoning if shape.think else ""
    return JSONResponse({**shape.piece(result.text, reasoning, calls), **done_fields(result.done)})


async def _stream(generation: Generation, shape: _Shape, request: Request) -> AsyncIterator[bytes]:
    calls = ToolCallsAccumulator()
    try:
        async for message in generation.events():
            if message.HasField("delta") and message.delta.text:
                yield _line(shape.piece(message.delta.text))
            elif message.HasField("reasoning") and message.reasoning.text and shape.think:
                yield _line(shape.piece(thinking=message.reasoning.text))
            elif message.HasField("tool_call"):
                calls.add(message.tool_call)
            elif message.HasField("done"):
                if calls.calls:  # Ollama streams whole calls, not pieces
                    yield _line(shape.piece(calls=[tool_call_json(c) for c in calls.calls]))
                yield _line({**shape.piece(), **done_fields(message.done)})
    except grpc.aio.AioRpcError as exc:
        # The status line is sent: the error goes in-band, once, as Ollama sends it.
        yield _line(error_body(from_grpc_error(exc, grpc_target(request))))
    finally:
        generation.cancel()  # the client went away, or we are done: free the engine slot


@router.get("/version", **answers(m.OllamaVersion))
async def version() -> dict[str, str]:
    return {"version": OLLAMA_API_VERSION}


@router.get("/tags", **answers(m.OllamaTags))
async def tags(request: Request) -> dict[str, Any]:
    reply = await clients(request).models.ListModels(model_pb2.ListModelsRequest())
    return {"models": [translate.tag(m) for m in reply.models]}


@router.get("/ps", **answers(m.OllamaRunning))
async def ps(request: Request) -> dict[str, Any]:
    reply = await clients(request).models.ListModels(model_pb2.ListModelsRequest())
    return {"models": [translate.running(m) for m in reply.models if m.loaded]}


@router.post("/show", **answers(m.OllamaShow))
async def show(body: ModelRequest, request: Request) -> dict[str, Any]:
    reply = await clients(request).models.GetModel(
        model_pb2.GetModelRequest(id=model_id(body.model))
    )
    return translate.show(reply.model)


@router.delete("/delete", **answers(None, description="Deleted: an empty answer"))
async def delete(body: ModelRequest, request: Request) -> Response:
    await clients(request).models.DeleteModel(model_pb2.DeleteModelRequest(id=model_id(body.model)))
    return Response(status_code=200)


@router.post("/pull", **answers(m.OllamaPullStatus, m.OllamaPullStatus, NDJSON))
async def pull(body: ModelRequest, request: Request) -> Response:
    call = clients(request).models.PullModel(
        model_pb2.PullModelRequest(repo_id=model_id(body.model))
    )
    try:
        first = await call.read()  # errors (bad name, unreachable hub) get their status
    except BaseException:
        call.cancel()
        raise
    if not body.stream:
        try:
            while (await call.read()) is not grpc.aio.EOF:
                pass
        finally:
            call.cancel()
        return JSONResponse({"status": "success"})
    return StreamingResponse(_pull_stream(call, first, body.model, request), media_type=NDJSON)


async def _pull_stream(call: Any, first: Any, name: str, request: Request) -> AsyncIterator[bytes]:
    """Ollama's pull statuses: the manifest, one layer (the model's files, as one download),
    verifying, writing the manifest, success."""
    layer = "sha256:" + hashlib.sha256(model_id(name).encode()).hexdigest()
    yield _line({"status": "pulling manifest"})
    try:
        message = first
        while message is not grpc.aio.EOF:
            if message.HasField("progress"):
                p = message.progress
                yield _line(
                    {
                        "status": f"pulling {layer[7:19]}",
                        "digest": layer,
                        "total": p.bytes_total,
                        "completed": p.bytes_done,
                    }
                )
            message = await call.read()
        for status in ("verifying sha256 digest", "writing manifest", "success"):
            yield _line({"status": status})
    except grpc.aio.AioRpcError as exc:
        yield _line(error_body(from_grpc_error(exc, grpc_target(request))))
    finally:
        call.cancel()  # a client gone mid-pull stops the download


@router.post("/embed", **answers(m.OllamaEmbed))
async def embed(body: EmbedRequest, request: Request) -> dict[str, Any]:
    texts = [body.input] if isinstance(body.input, str) else body.input
    embed_request = pb.EmbedRequest(
        model=model_id(body.model),
        texts=texts,
        truncate=body.truncate,
        dimensions=body.dimensions or 0,
        normalize=True,  # /api/embed's vectors are unit length
    )
    if body.keep_alive is not None:
        embed_request.keep_alive_seconds = parse_duration(body.keep_alive)
    reply = await clients(request).inference.Embed(_non_empty(embed_request))
    return {
        "model": ollama_name(reply.model),
        "embeddings": [list(e.values) for e in reply.embeddings],
        "total_duration": int(reply.total_seconds * 1e9),
        "load_duration": int(reply.load_seconds * 1e9),
        "prompt_eval_count": reply.prompt_tokens,
    }


@router.post("/embeddings", **answers(m.OllamaEmbedding))
async def embeddings(body: EmbeddingsRequest, request: Request) -> dict[str, Any]:
    """The older route: one vector, as the model makes it (not normalized by the route)."""
    embed_request = pb.EmbedRequest(model=model_id(body.model), texts=[body.prompt])
    if body.keep_alive is not None:
        embed_request.keep_alive_seconds = parse_duration(body.keep_alive)
    reply = await clients(request).inference.Embed(_non_empty(embed_request))
    return {"embedding": list(reply.embeddings[0].values)}


def _non_empty(embed_request: pb.EmbedRequest) -> pb.EmbedRequest:
    if not embed_request.texts or not all(embed_request.texts):
        raise BridgeError("input must hold text to embed", field="input")
    return embed_request


@router.post("/copy", **answers(None, description="Copied: an empty answer"))
async def copy(body: CopyRequest, request: Request) -> Response:
    copy_request = model_pb2.CopyModelRequest(
        source_id=model_id(body.source), destination_id=model_id(body.destination)
    )
    await clients(request).models.CopyModel(copy_request)
    return Response(status_code=200)
