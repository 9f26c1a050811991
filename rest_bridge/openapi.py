"""The bridge's /openapi.json: each route's real answers (pydantic models), streams included.

Routes return dicts shaped as each API sends them, so FastAPI's response_model (which would
validate and re-serialize every answer) is off; `answers` documents the models instead. A
streamed answer is documented as its media type, with FastAPI's unseen item models added to the
components by `openapi_document`:
- SSE: the media type's schema is one event (OpenAPI 3.1 has no item schema; 3.2's itemSchema
  means the same), whose `data` is a JSON string of the item model (contentMediaType and
  contentSchema), or OpenAI's closing "[DONE]";
- NDJSON: the media type's schema is one line, the item model itself.
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
    done_marker: bool = False,
) -> dict[str, Any]:
    """Route decorator arguments that document a route's 200: `model` as JSON (None: an empty
    body), and when the route can stream (`stream: true` in its body), `stream` as each item of
    `media_type`; `done_marker`: the SSE stream ends with `data: [DONE]`."""
    if model is None:
        empty = {"description": description or "Done: an empty answer"}
        return {"response_model": None, "response_class": Response, "responses": {200: empty}}
    ok: dict[str, Any] = {"model": model, "description": description or "Successful answer"}
    if stream is not None:
        _stream_models[stream.__name__] = stream
        item = {"$ref": _REF.format(model=stream.__name__)}
        schema = _sse_event(item, done_marker) if media_type == SSE else item
        ok["content"] = {media_type: {"schema": schema}}
    return {"response_model": None, "responses": {200: ok}}


def _sse_event(item: dict[str, Any], done_marker: bool) -> dict[str, Any]:
    """One server-sent event whose data is `item` as JSON (or "[DONE]", with `done_marker`)."""
    data: dict[str, Any] = {
        "type": "string",
        "contentMediaType": "application/json",
        "contentSchema": item,
    }
    if done_marker:
        data = {"anyOf": [{"const": "[DONE]"}, data]}
    return {
        "type": "object",
        "required": ["data"],
        "properties": {"event": {"type": "string"}, "id": {"type": "string"}, "data": data},
    }


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
