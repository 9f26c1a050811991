"""The bridge's /openapi.json: each route's real answers (pydantic models), streams included.

Routes return dicts shaped as each API sends them, so FastAPI's response_model (which would
validate and re-serialize every answer) is off; `answers` documents the models instead. A
streamed answer is documented as its media type (SSE or NDJSON) whose items are a model: OpenAPI
3.1 has no item schema, so the item model is the media type's schema, and `openapi_document`
adds the item models FastAPI does not see to the components.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI, Response
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

SSE = "text/event-stream"
NDJSON = "application/x-ndjson"
_REF = "#/components/schemas/{model}"

# Item models of streamed answers, by name: FastAPI registers only the JSON answers' models.
_stream_models: dict[str, type[BaseModel]] = {}


def answers(
    model: type[BaseModel] | None,
    stream: type[BaseModel] | None = None,
    media_type: str = SSE,
    description: str = "",
) -> dict[str, Any]:
    """Route decorator arguments that document a route's 200: `model` as JSON (None: an empty
    body), and when the route can stream (`stream: true` in its body), `stream` as each item of
    `media_type`."""
    if model is None:
        empty = {"description": description or "Done: an empty answer"}
        return {"response_model": None, "response_class": Response, "responses": {200: empty}}
    ok: dict[str, Any] = {"model": model, "description": description or "Successful answer"}
    if stream is not None:
        _stream_models[stream.__name__] = stream
        ok["content"] = {media_type: {"schema": {"$ref": _REF.format(model=stream.__name__)}}}
    return {"response_model": None, "responses": {200: ok}}


def openapi_document(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document, plus the stream item models; built once, as FastAPI's own is."""
    if app.openapi_schema is None:
        schema = get_openapi(title=app.title, version=app.version, routes=app.routes)
        if _stream_models:
            _, defs = models_json_schema(
                [(m, "serialization") for m in _stream_models.values()], ref_template=_REF
            )
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            for name, definition in defs.get("$defs", {}).items():
                components.setdefault(name, definition)
        app.openapi_schema = _family_names(schema)
    return app.openapi_schema


# Families' request models share names (Message, Tool...): FastAPI then names their components
# by module (rest_bridge__ollama__protocol__Tool), which generated clients turn into class names.
_FAMILY_PREFIXES = {
    ("openai", "protocol"): "Chat",
    ("openai", "responses_protocol"): "Responses",
    ("ollama", "protocol"): "Ollama",
    ("anthropic", "protocol"): "Anthropic",
}


def _family_names(schema: dict[str, Any]) -> dict[str, Any]:
    """rest_bridge__ollama__protocol__Tool -> OllamaTool, in the components and every $ref."""
    components = schema.get("components", {}).get("schemas", {})
    renames = {}
    for name in components:
        parts = name.split("__")
        prefix = _FAMILY_PREFIXES.get(tuple(parts[1:3])) if len(parts) == 4 else None
        if parts[0] == "rest_bridge" and prefix and prefix + parts[3] not in components:
            renames[name] = prefix + parts[3]
    text = json.dumps(schema)
    for old, new in renames.items():
        text = text.replace(f'"{_REF.format(model=old)}"', f'"{_REF.format(model=new)}"')
    renamed = json.loads(text)
    table = renamed["components"]["schemas"] if renames else {}
    for old, new in renames.items():
        table[new] = table.pop(old)
    return renamed
