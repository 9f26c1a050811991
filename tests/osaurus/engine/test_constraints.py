"""Constrained decoding on the real 135M model: the reply parses and validates, every time."""

from __future__ import annotations

import asyncio
import json

import jsonschema
import pytest
from engine_helpers import chat, run

from osaurus.engine.engine import Engine
from osaurus.engine.request import ResponseFormat
from osaurus.errors import InvalidArgument

CITY = {
    "type": "object",
    "properties": {
        "city": {"type": "string"},
        "country": {"type": "string"},
        # Bounded: a 135M model may otherwise write digits until max_tokens.
        "population": {"type": "integer", "minimum": 0, "maximum": 100000000},
    },
    "required": ["city", "country", "population"],
    "additionalProperties": False,
}
PET = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 20},
        "kind": {"enum": ["cat", "dog", "bird"]},
        "tags": {"type": "array", "items": {"type": "string", "maxLength": 12}, "maxItems": 3},
        "vaccinated": {"type": "boolean"},
    },
    "required": ["name", "kind", "tags", "vaccinated"],
    "additionalProperties": False,
}
CASES = [
    ("Tell me about Paris.", CITY),
    ("Describe a pet for me.", PET),
    ("Write a poem about the sea.", PET),  # a prompt that has nothing to do with the schema
]


def schema_format(schema: dict) -> ResponseFormat:
    return ResponseFormat(type="json_schema", schema=schema, name="answer")


@pytest.mark.parametrize(("prompt", "schema"), CASES)
async def test_the_reply_validates_against_the_schema(engine: Engine, model_id, prompt, schema):
    out = await run(
        engine,
        chat(model_id, prompt, max_tokens=120, response_format=schema_format(schema)),
    )
    assert out.finished.finish_reason == "stop", out.text  # the grammar ended it, not max_tokens
    jsonschema.validate(json.loads(out.text), schema)


async def test_json_object_mode_gives_an_object(engine: Engine, model_id: str):
    out = await run(
        engine,
        chat(
            model_id,
            'Give me the name and age of a person as JSON, like {"name": ..., "age": ...}.',
            max_tokens=60,
            response_format=ResponseFormat(type="json_object"),
        ),
    )
    assert out.finished.finish_reason == "stop", out.text
    assert isinstance(json.loads(out.text), dict)


async def test_without_the_constraint_the_model_does_not_write_json(engine: Engine, model_id):
    """The check above is not vacuous: left alone, this model answers in prose."""
    out = await run(engine, chat(model_id, "Tell me about Paris.", max_tokens=40))
    with pytest.raises(json.JSONDecodeError):
        json.loads(out.text)


async def test_constrained_and_free_requests_share_a_batch(engine: Engine, model_id: str):
    constrained = chat(
        model_id, "Tell me about Paris.", max_tokens=120, response_format=schema_format(CITY)
    )
    free = chat(model_id, "Name three colours.", max_tokens=24)
    alone = [await run(engine, constrained), await run(engine, free)]
    together = await asyncio.gather(run(engine, constrained), run(engine, free))
    assert [o.same_as for o in together] == [o.same_as for o in alone]
    jsonschema.validate(json.loads(together[0].text), CITY)


@pytest.mark.parametrize(
    "schema", [{"type": "objectx"}, {"type": "object", "properties": {"a": {"type": 5}}}]
)
async def test_a_schema_that_cannot_be_enforced_is_invalid_argument(engine, model_id, schema):
    with pytest.raises(InvalidArgument, match="response_format") as info:
        await run(engine, chat(model_id, "Hi", response_format=schema_format(schema)))
    assert info.value.field == "response_format"
