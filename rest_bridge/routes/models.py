"""GET /v1/models and /v1/models/{id} in OpenAI's list and object formats."""

from __future__ import annotations

from fastapi import APIRouter, Request

from osaurus.v1 import model_pb2
from rest_bridge.grpc_client import clients

router = APIRouter()


def _model_json(model: model_pb2.Model) -> dict:
    created = model.modified_time.seconds  # OpenAI's `created`: when the model came to be here
    return {"id": model.id, "object": "model", "created": created, "owned_by": "osaurus"}


@router.get("/v1/models")
@router.get("/models", include_in_schema=False)
async def list_models(request: Request) -> dict:
    response = await clients(request).models.ListModels(model_pb2.ListModelsRequest())
    return {"object": "list", "data": [_model_json(m) for m in response.models]}


@router.get("/v1/models/{model_id:path}")
@router.get("/models/{model_id:path}", include_in_schema=False)
async def retrieve_model(model_id: str, request: Request) -> dict:
    response = await clients(request).models.GetModel(model_pb2.GetModelRequest(id=model_id))
    return _model_json(response.model)
