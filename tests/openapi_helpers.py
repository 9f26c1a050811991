"""Checks an answer of the bridge against what its /openapi.json documents for that route and
status: the media type is documented, and the body (each event or line, when streamed) is valid
against the documented schema."""

from __future__ import annotations

import json
from typing import Any

import httpx
from jsonschema import Draft202012Validator


def items(response: httpx.Response) -> tuple[str, list[Any]]:
    """The answer's media type and its JSON items: one body, SSE events' data, NDJSON lines."""
    media = response.headers.get("content-type", "").split(";")[0]
    if media == "text/event-stream":
        data = [line[5:].strip() for line in response.text.splitlines() if line.startswith("data:")]
        return media, [json.loads(d) for d in data if d != "[DONE]"]
    if media == "application/x-ndjson":
        return media, [json.loads(line) for line in response.text.splitlines() if line]
    return media, [response.json()] if response.content else []


class Documented:
    def __init__(self, document: dict[str, Any]):
        self.document = document

    def check(self, method: str, path: str, response: httpx.Response) -> list[Any]:
        """`path` as the document names it ("/v1/models/{model_id}"); returns the items."""
        operation = self.document["paths"][path][method.lower()]
        status = str(response.status_code)
        spec = operation["responses"].get(status) or operation["responses"].get(f"{status[0]}XX")
        assert spec is not None, f"{method} {path}: status {status} is not documented"
        media, answers = items(response)
        content = spec.get("content", {})
        if not content:
            assert not response.content, f"{method} {path}: documented empty, got a body"
            return []
        assert media in content, f"{method} {path}: {media!r} is not among {list(content)}"
        schema = {**item_schema(media, content[media]), "components": self.document["components"]}
        validator = Draft202012Validator(schema)
        for answer in answers:
            errors = [e.message for e in validator.iter_errors(answer)]
            assert not errors, f"{method} {path} {status}: {errors[:3]} in {answer}"
        return answers


def item_schema(media: str, media_object: dict[str, Any]) -> dict[str, Any]:
    """The schema of one JSON item: for SSE, the contentSchema of the documented event's data."""
    schema = media_object["schema"]
    if media != "text/event-stream":
        return schema
    data = schema["properties"]["data"]
    return next(b for b in data.get("anyOf", [data]) if "contentSchema" in b)["contentSchema"]
