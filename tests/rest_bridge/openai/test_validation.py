"""Bad OpenAI requests through the bridge and the real InferenceService (over a fake engine):
each is a 400 in OpenAI's shape naming the param, whether the bridge or the server found it.
The official openai client sends them, as a user's code would."""

from __future__ import annotations

import openai
import pytest
from bridge_helpers import bridge_over
from fake_engine import FakeEngine

from osaurus.services.inference import InferenceServicer

QUESTION = [{"role": "user", "content": "Name the capital of France."}]
MODEL = "m"


@pytest.fixture
async def bridge():
    engine = FakeEngine()
    async with bridge_over(InferenceServicer(engine)) as bridge:
        client = openai.AsyncOpenAI(
            base_url="http://bridge/v1", api_key="any", max_retries=0, http_client=bridge.http
        )
        yield client, bridge.http, engine


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"temperature": 2.5}, "temperature"),
        ({"top_p": -0.1}, "top_p"),
        ({"extra_body": {"min_p": 1.5}}, "min_p"),
        ({"extra_body": {"top_k": -1}}, "top_k"),
        ({"n": 2}, "n"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"max_tokens": 2**40}, "max_tokens"),
        ({"messages": [{"role": "wizard", "content": "hi"}]}, "messages[0].role"),
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "user", "content": 5}]}, "messages[0].content"),
        ({"stop": 5}, "stop"),
        ({"stop": ""}, "stop"),
        ({"stop": ["ok", ""]}, "stop"),
        ({"stream_options": {"include_usage": True}}, "stream_options"),
        ({"extra_body": {"keep_alive": "soon"}}, "keep_alive"),
        ({"logprobs": True, "top_logprobs": 25}, "top_logprobs"),  # the server's range
        ({"top_logprobs": 2}, "top_logprobs"),  # needs logprobs
    ],
)
async def test_invalid_values_are_400_naming_the_param(bridge, kwargs, param) -> None:
    client, _, engine = bridge
    args = {"model": MODEL, "messages": QUESTION, **kwargs}
    for stream in (False, True):
        with pytest.raises(openai.BadRequestError) as info:
            await client.chat.completions.create(**args, stream=stream)
        assert info.value.status_code == 400
        assert info.value.body["param"] == param
        assert info.value.body["type"] == "invalid_request_error"
        if "stream_options" in kwargs:
            break  # with stream=True it is valid
    assert engine.requests == []  # refused before the engine


async def test_model_errors_name_their_code(bridge) -> None:
    client, _, _ = bridge
    with pytest.raises(openai.NotFoundError) as info:
        await client.chat.completions.create(model="missing", messages=QUESTION)
    assert (info.value.body["code"], info.value.body["param"]) == ("model_not_found", "model")
    with pytest.raises(openai.BadRequestError) as info:
        await client.chat.completions.create(model="long", messages=QUESTION)
    assert info.value.body["code"] == "context_length_exceeded"


async def test_raw_http_errors_are_openai_shaped(bridge) -> None:
    _, http, _ = bridge
    url = "/v1/chat/completions"
    bad_json = await http.post(
        url, content=b"{not json", headers={"content-type": "application/json"}
    )
    assert bad_json.status_code == 400 and "JSON" in bad_json.json()["error"]["message"]
    wrong_type = await http.post(
        url, json={"model": MODEL, "messages": QUESTION, "temperature": "hot"}
    )
    assert wrong_type.status_code == 400 and wrong_type.json()["error"]["param"] == "temperature"
    missing = await http.post(url, json={"messages": QUESTION})
    assert missing.status_code == 400 and missing.json()["error"]["param"] == "model"
    not_object = await http.post(url, json=[1, 2])
    assert not_object.status_code == 400
    unknown_route = await http.get("/v1/nothing")
    assert unknown_route.status_code == 404 and "error" in unknown_route.json()
    wrong_method = await http.get(url)
    assert wrong_method.status_code == 405 and "error" in wrong_method.json()
    # Unknown fields are ignored, as OpenAI-compatible servers do.
    ok = await http.post(
        url,
        json={
            "model": MODEL,
            "messages": QUESTION,
            "max_tokens": 2,
            "frobnicate": True,
            "logit_bias": {},
        },
    )
    assert ok.status_code == 200
