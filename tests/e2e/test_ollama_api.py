"""The official `ollama` Python client against the bridge of a real server with the real model."""

from __future__ import annotations

import json

import httpx
import ollama
import pytest

QUESTION = [{"role": "user", "content": "Name the capital of France."}]
ANSWER = "The capital of France is Paris."
GREEDY = {"temperature": 0}


@pytest.fixture(scope="module")
def client(server) -> ollama.Client:
    return ollama.Client(host=server.http_url, timeout=120)


@pytest.fixture(scope="module")
def name(model_id) -> str:
    return f"{model_id}:latest"  # what Ollama clients send


def test_root_and_version_answer_as_ollama_does(server) -> None:
    assert httpx.get(server.http_url).status_code == 200
    assert httpx.head(server.http_url).status_code == 200
    version = httpx.get(f"{server.http_url}/api/version").json()["version"]
    assert [int(part) for part in version.split(".")] >= [0, 12]


def test_chat_answers_with_counts_and_measured_durations(client, name) -> None:
    r = client.chat(model=name, messages=QUESTION, options=GREEDY)
    assert r.message.role == "assistant" and r.message.content == ANSWER
    assert r.done and r.done_reason == "stop" and r.model == name
    assert r.eval_count == 7 and r.prompt_eval_count > 0
    assert 0 < r.prompt_eval_duration < r.total_duration
    assert 0 < r.eval_duration <= r.total_duration
    assert r.created_at.endswith("Z")


def test_chat_streams_pieces_then_one_done_object(client, name) -> None:
    parts = list(client.chat(model=name, messages=QUESTION, options=GREEDY, stream=True))
    assert "".join(p.message.content for p in parts) == ANSWER
    assert len(parts) > 4 and [p.done for p in parts] == [False] * (len(parts) - 1) + [True]
    assert parts[-1].eval_count == 7 and parts[-1].total_duration > 0


def test_generate_with_system_raw_and_num_predict(client, name) -> None:
    r = client.generate(model=name, prompt="Name the capital of France.", options=GREEDY)
    assert r.response == ANSWER and r.done_reason == "stop"
    short = client.generate(
        model=name, prompt="Name the capital of France.", options={**GREEDY, "num_predict": 3}
    )
    assert (short.response, short.done_reason, short.eval_count) == ("The capital of", "length", 3)
    raw = client.generate(
        model=name,
        prompt="The capital of France is",
        raw=True,
        options={**GREEDY, "num_predict": 2},
    )
    assert raw.eval_count == 2 and raw.prompt_eval_count <= 6  # no chat template around it
    streamed = "".join(
        p.response
        for p in client.generate(
            model=name, prompt="Name the capital of France.", options=GREEDY, stream=True
        )
    )
    assert streamed == ANSWER


def test_options_stop_and_format(client, name) -> None:
    r = client.chat(model=name, messages=QUESTION, options={**GREEDY, "stop": ["Paris"]})
    assert r.message.content == "The capital of France is "
    r = client.chat(
        model=name,
        messages=[{"role": "user", "content": "Give a JSON object with a key city."}],
        format={"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        options={**GREEDY, "num_predict": 40},
    )
    assert isinstance(json.loads(r.message.content)["city"], str)


def test_list_show_and_ps(client, name, model_id) -> None:
    listed = {m.model: m for m in client.list().models}
    assert name in listed
    tag = listed[name]
    assert tag.size > 50_000_000 and len(tag.digest) == 64
    assert tag.details.family == "llama" and tag.details.quantization_level == "Q4_G32"
    assert tag.details.parameter_size == "135M"  # counted from the weights' headers
    shown = client.show(name)
    assert shown.details.family == "llama"
    assert shown.modelinfo["general.architecture"] == "llama"
    assert shown.modelinfo["general.parameter_count"] == 134_515_008
    assert shown.modelinfo["llama.context_length"] == 8192
    assert shown.modelinfo["llama.embedding_length"] == 576
    assert shown.modelinfo["llama.block_count"] == 30
    assert shown.capabilities == ["completion"]
    assert "<|im_start|>" in shown.template
    client.chat(model=name, messages=QUESTION, options={"num_predict": 1})
    running = {m.model: m for m in client.ps().models}
    assert name in running and running[name].size > 0


def test_an_empty_request_loads_and_keep_alive_0_unloads(client, name) -> None:
    loaded = client.generate(model=name)
    assert (loaded.done, loaded.done_reason) == (True, "load")
    warm = client.generate(model=name, prompt="Hi", options={"num_predict": 1})
    assert warm.load_duration == 0  # loaded already
    assert name in {m.model for m in client.ps().models}
    unloaded = client.chat(model=name, messages=[], keep_alive=0)
    assert unloaded.done_reason == "unload"
    assert name not in {m.model for m in client.ps().models}
    cold = client.generate(model=name, prompt="Hi", options={"num_predict": 1})
    assert 0 < cold.load_duration < cold.total_duration  # measured: it loaded for this one
    assert cold.prompt_eval_duration < cold.total_duration - cold.load_duration


def test_errors_are_ollama_shaped_with_their_status(client, name, server) -> None:
    with pytest.raises(ollama.ResponseError) as info:
        client.chat(model="nope:latest", messages=QUESTION)
    assert info.value.status_code == 404 and "model 'nope' not found" in info.value.error
    with pytest.raises(ollama.ResponseError) as info:
        client.chat(model=name, messages=[{"role": "user", "content": "hi", "images": ["aGk="]}])
    assert info.value.status_code == 400 and "images" in info.value.error
    with pytest.raises(ollama.ResponseError) as info:
        client.chat(model=name, messages=QUESTION, options={"num_ctx": 100_000})
    assert info.value.status_code == 400 and "8192" in info.value.error
    bad = httpx.post(
        f"{server.http_url}/api/chat",
        json={"model": name, "messages": QUESTION, "options": {"temperature": "hot"}},
    )
    assert bad.status_code == 400 and "temperature" in bad.json()["error"]
    unknown = httpx.get(f"{server.http_url}/api/nothing")
    assert unknown.status_code == 404 and set(unknown.json()) == {"error"}


def test_copy_then_delete_the_copy(client, name, server) -> None:
    assert client.copy(name, "smollm2-copy").status == "success"
    try:
        listed = {m.model for m in client.list().models}
        assert {"smollm2-copy:latest", name} <= listed
        with pytest.raises(ollama.ResponseError) as info:
            client.copy(name, "smollm2-copy")
        assert info.value.status_code == 409 and "already exists" in info.value.error
        with pytest.raises(ollama.ResponseError) as info:
            client.copy(name, "../outside")
        assert info.value.status_code == 400
        with pytest.raises(ollama.ResponseError) as info:
            client.copy("nope", "other")
        assert info.value.status_code == 404
        prompt = "Name the capital of France."
        assert (
            client.generate(model="smollm2-copy", prompt=prompt, options=GREEDY).response == ANSWER
        )
    finally:
        assert client.delete("smollm2-copy").status == "success"
    assert not (server.models_dir / "smollm2-copy").exists()
