"""response_format through both transports, with the official openai client and gRPC stubs."""

from __future__ import annotations

import json

import grpc
import jsonschema
import openai
import pytest

from osaurus.v1 import inference_pb2 as ipb
from osaurus.v1 import inference_pb2_grpc

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
ASK = [{"role": "user", "content": "Tell me about Paris."}]
JSON_SCHEMA = {
    "type": "json_schema",
    "json_schema": {"name": "city", "schema": CITY, "strict": True},
}


@pytest.fixture(scope="module")
def client(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.http_url}/v1", api_key="any", max_retries=0)


def test_json_schema_non_stream_and_stream_agree_and_validate(client, model_id) -> None:
    options = dict(model=model_id, messages=ASK, max_tokens=120, temperature=0)
    whole = client.chat.completions.create(response_format=JSON_SCHEMA, **options)
    assert whole.choices[0].finish_reason == "stop"
    jsonschema.validate(json.loads(whole.choices[0].message.content), CITY)

    chunks = client.chat.completions.create(response_format=JSON_SCHEMA, stream=True, **options)
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert streamed == whole.choices[0].message.content


def test_the_openai_parse_helper_gets_a_validated_object(client, model_id) -> None:
    """`client.chat.completions.parse` (the SDK's structured-output helper) round-trips."""
    from pydantic import BaseModel, ConfigDict, Field

    class City(BaseModel):
        model_config = ConfigDict(extra="forbid")
        city: str
        country: str
        population: int = Field(ge=0, le=100_000_000)

    parsed = client.chat.completions.parse(
        model=model_id, messages=ASK, max_tokens=120, temperature=0, response_format=City
    )
    city = parsed.choices[0].message.parsed
    assert isinstance(city, City) and city.city


@pytest.mark.parametrize(
    ("response_format", "fragment"),
    [
        ({"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "nope"}}}, "nope"),
        ({"type": "json_schema"}, "json_schema is required"),
        ({"type": "xml"}, "type"),
    ],
)
def test_bad_response_formats_are_400_naming_the_param(client, model_id, response_format, fragment):
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(
            model=model_id, messages=ASK, max_tokens=5, response_format=response_format
        )
    error = info.value.body
    assert error["param"].startswith("response_format")
    assert fragment in error["message"]


def test_json_schema_over_grpc(channel, model_id) -> None:
    stub = inference_pb2_grpc.InferenceServiceStub(channel)
    request = ipb.GenerateRequest(
        model=model_id,
        chat=ipb.Chat(messages=[ipb.ChatMessage(role=ipb.ROLE_USER, content=ASK[0]["content"])]),
        max_tokens=120,
        response_format=ipb.ResponseFormat(
            json_schema=ipb.JsonSchemaFormat(name="city", schema=json.dumps(CITY))
        ),
    )
    text = "".join(e.delta.text for e in stub.Generate(request, timeout=120) if e.HasField("delta"))
    jsonschema.validate(json.loads(text), CITY)

    request.response_format.json_schema.schema = "{not json"
    with pytest.raises(grpc.RpcError) as info:
        list(stub.Generate(request, timeout=30))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "not valid JSON" in info.value.details()
