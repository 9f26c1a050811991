"""OpenAI's Responses routes: POST /v1/responses, GET and DELETE /v1/responses/{id}.

A response continues another (previous_response_id) on the conversation the store kept for it
and on the same server session, so turn N prefills only what turn N added.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from sse_starlette.sse import EventSourceResponse

from osaurus.v1 import inference_pb2 as pb
from rest_bridge.errors import BridgeError, from_grpc_error, grpc_target
from rest_bridge.generation import (
    Generation,
    start_generation,
)
from rest_bridge.grpc_client import clients
from rest_bridge.openai import response_models as m
from rest_bridge.openai import responses
from rest_bridge.openai.errors import OpenAIRoute, error_body
from rest_bridge.openai.responses_protocol import ResponsesRequest
from rest_bridge.openai.responses_store import ResponseStore
from rest_bridge.openapi import answers
from rest_bridge.sse import named_event

router = APIRouter(route_class=OpenAIRoute)


def _store(request: Request) -> ResponseStore:
    state = request.app.state
    if not hasattr(state, "openai_responses"):
        state.openai_responses = ResponseStore()
    return state.openai_responses


def _not_found(response_id: str) -> BridgeError:
    return BridgeError(
        f"no response {response_id!r} (never stored, deleted, or expired)",
        404,
        field="previous_response_id",
        reason="NOT_FOUND",
    )


@router.post("/v1/responses", **answers(m.Response, m.ResponseEvent))
async def create_response(body: ResponsesRequest, request: Request) -> Response:
    history: list[pb.ChatMessage] = []
    response_id = responses.new_id("resp")
    session_id = f"responses-{response_id}"  # a new chain's session, shared by its turns
    if body.previous_response_id:
        previous = _store(request).get(body.previous_response_id)
        if previous is None:
            raise _not_found(body.previous_response_id)
        history, session_id = list(previous.conversation), previous.session_id
    generate = responses.to_generate_request(body, history, session_id)
    generation = await start_generation(clients(request).inference, generate)
    model = generation.started.model
    conversation = [*history, *responses.input_messages(body)]

    def keep(response: dict[str, Any]) -> None:
        if body.store:
            reply = responses.reply_message(response["output"])
            _store(request).put(response, [*conversation, reply], session_id)

    if body.stream:
        writer = responses.ResponsesStreamWriter(response_id, body, model)
        return EventSourceResponse(_events(generation, writer, keep, request), sep="\n", ping=15)
    try:
        result = await generation.collect()
    finally:
        generation.cancel()
    out = responses.response_object(
        response_id, body, model, "completed", responses.output_items(result), result.done
    )
    keep(out)
    return JSONResponse(out)


async def _events(
    generation: Generation,
    writer: responses.ResponsesStreamWriter,
    keep: Callable[[dict[str, Any]], None],
    request: Request,
) -> AsyncIterator[dict[str, str]]:
    try:
        for event in writer.start():
            yield named_event(event)
        async for message in generation.events():
            for event in writer.feed(message):
                yield named_event(event)
        if writer.final is not None:
            keep(writer.final)
    except grpc.aio.AioRpcError as exc:
        error = error_body(from_grpc_error(exc, grpc_target(request)))["error"]
        yield named_event({"type": "error", "sequence_number": writer.sequence, **error})
    finally:
        generation.cancel()


@router.get("/v1/responses/{response_id}", **answers(m.Response))
async def retrieve_response(response_id: str, request: Request) -> dict[str, Any]:
    stored = _store(request).get(response_id)
    if stored is None:
        raise _not_found(response_id)
    return stored.body


@router.delete("/v1/responses/{response_id}", **answers(m.DeletedResponse))
async def delete_response(response_id: str, request: Request) -> dict[str, Any]:
    if not _store(request).delete(response_id):
        raise _not_found(response_id)
    return {"id": response_id, "object": "response", "deleted": True}
