"""The server's own API over REST, under /osaurus/v1: what osaurus-ctl does over gRPC, for the
dashboard (/ui) and scripts. Each route is one gRPC call; streams (a pull, the stats) are SSE
that end when the client goes away, which cancels the call (a pull stops downloading).
Errors have OpenAI's shape, as the bridge's other own routes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
from fastapi import APIRouter, Query, Request
from sse_starlette.sse import EventSourceResponse

from osaurus.durations import parse_duration
from osaurus.v1 import model_pb2, system_pb2
from rest_bridge.errors import from_grpc_error, grpc_target
from rest_bridge.grpc_client import clients
from rest_bridge.manage import response_models as m
from rest_bridge.manage import translate
from rest_bridge.manage.protocol import ImportRequest, LoadRequest, PullRequest
from rest_bridge.openai.errors import OpenAIRoute, error_body
from rest_bridge.openapi import answers
from rest_bridge.sse import data_event

router = APIRouter(prefix="/osaurus/v1", route_class=OpenAIRoute, tags=["osaurus"])


@router.get("/status", **answers(m.ServerStatus))
async def status(request: Request) -> dict[str, Any]:
    stubs = clients(request)
    reply = await stubs.system.GetStatus(system_pb2.GetStatusRequest())
    listed = await stubs.models.ListModels(model_pb2.ListModelsRequest())
    loaded = [model for model in listed.models if model.loaded]
    return translate.status(reply, loaded, stubs.target)


@router.get("/models", **answers(m.ServerModelList))
async def list_models(request: Request) -> dict[str, Any]:
    listed = await clients(request).models.ListModels(model_pb2.ListModelsRequest())
    return {"models": [translate.model(model) for model in listed.models]}


@router.post("/models/import", **answers(m.ImportedModel))
async def import_model(body: ImportRequest, request: Request) -> dict[str, Any]:
    reply = await clients(request).models.ImportModel(
        model_pb2.ImportModelRequest(gguf_path=body.gguf_path, name=body.name)
    )
    return {"model": translate.model(reply.model)}


@router.post("/models/{model_id:path}/load", **answers(m.LoadedModel))
async def load_model(
    model_id: str, request: Request, body: LoadRequest | None = None
) -> dict[str, Any]:
    load = model_pb2.LoadModelRequest(id=model_id)
    if body is not None and body.keep_alive is not None:
        load.keep_alive_seconds = parse_duration(body.keep_alive)
    reply = await clients(request).models.LoadModel(load)
    return {"model": translate.model(reply.model), "load_seconds": reply.load_seconds}


@router.post("/models/{model_id:path}/unload", **answers(m.UnloadedModel))
async def unload_model(model_id: str, request: Request) -> dict[str, Any]:
    reply = await clients(request).models.UnloadModel(model_pb2.UnloadModelRequest(id=model_id))
    return {"was_loaded": reply.was_loaded}


@router.delete("/models/{model_id:path}", **answers(m.DeletedModel))
async def delete_model(model_id: str, request: Request) -> dict[str, Any]:
    reply = await clients(request).models.DeleteModel(model_pb2.DeleteModelRequest(id=model_id))
    return {"freed_bytes": reply.freed_bytes}


@router.get("/hub/search", **answers(m.HubSearch))
async def search_hub(
    request: Request, query: str = "", limit: int = Query(default=20, ge=1, le=100)
) -> dict[str, Any]:
    """The hub's answer; when it cannot be reached, the curated list and why (a 200: the
    page still has something to offer)."""
    stubs = clients(request)
    try:
        found = await stubs.models.SearchModels(
            model_pb2.SearchModelsRequest(query=query, limit=limit)
        )
        note, reachable = "", True
    except grpc.aio.AioRpcError as exc:
        if exc.code() != grpc.StatusCode.UNAVAILABLE:
            raise
        found = await stubs.models.SearchModels(model_pb2.SearchModelsRequest(curated_only=True))
        note = f"{exc.details()}. Showing the curated list (sizes are estimates)."
        reachable = False
    return {
        "models": [translate.hub_model(h) for h in found.models],
        "hub_reachable": reachable,
        "note": note,
    }


@router.post("/hub/pull", **answers(m.PullEvent, m.PullEvent, description="SSE only"))
async def pull(body: PullRequest, request: Request) -> EventSourceResponse:
    call = clients(request).models.PullModel(
        model_pb2.PullModelRequest(repo_id=body.repo_id, revision=body.revision)
    )
    try:
        first = await call.read()  # a bad name or an unreachable hub gets its status
    except BaseException:
        call.cancel()
        raise
    return EventSourceResponse(_pull_events(call, first, request), sep="\n", ping=15)


async def _pull_events(call: Any, first: Any, request: Request) -> AsyncIterator[dict]:
    try:
        event = first
        while event is not grpc.aio.EOF:
            yield data_event(translate.pull_event(event))
            event = await call.read()
    except grpc.aio.AioRpcError as exc:
        error = error_body(from_grpc_error(exc, grpc_target(request)))["error"]
        yield data_event({"type": "error", "error": error})
    finally:
        call.cancel()  # the client went away (cancel in the page): the download stops


@router.get("/system/stats", **answers(m.SystemStats, m.SystemStats, description="SSE only"))
async def system_stats(
    request: Request,
    interval_seconds: float = Query(default=1.0, ge=0.1, le=60),
    count: int | None = Query(default=None, ge=1, description="End after this many samples"),
) -> EventSourceResponse:
    call = clients(request).system.WatchSystemStats(
        system_pb2.WatchSystemStatsRequest(interval_seconds=interval_seconds)
    )
    return EventSourceResponse(_stats_events(call, request, count), sep="\n", ping=15)


async def _stats_events(call: Any, request: Request, count: int | None) -> AsyncIterator[dict]:
    try:
        sent = 0
        async for sample in call:
            yield data_event(translate.stats(sample))
            sent += 1
            if sent == count:
                break
    except grpc.aio.AioRpcError as exc:
        yield data_event(error_body(from_grpc_error(exc, grpc_target(request))))
    finally:
        call.cancel()
