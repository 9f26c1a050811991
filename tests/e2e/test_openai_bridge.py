"""The official openai client against the REST bridge of a real server with the real model."""

from __future__ import annotations

import math
import time

import httpx
import openai
import pytest
from helpers import kept_tokens, wait_until_idle
from tokenizers import Tokenizer

from osaurus.client import open_channel

QUESTION = [{"role": "user", "content": "Name the capital of France."}]
ANSWER = "The capital of France is Paris."
# A request the model keeps answering until max_tokens (measured: 300 of 300 tokens).
COUNTING = [{"role": "user", "content": "Write the numbers from 1 to 1000, one per line."}]


@pytest.fixture(scope="module")
def client(server) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=f"{server.http_url}/v1", api_key="any", max_retries=0, timeout=120
    )


def test_non_stream_answers_and_usage_adds_up(client, model_id) -> None:
    r = client.chat.completions.create(model=model_id, messages=QUESTION, temperature=0)
    assert r.object == "chat.completion" and r.id.startswith("chatcmpl-")
    assert r.model == model_id
    assert r.choices[0].message.role == "assistant"
    assert r.choices[0].message.content == ANSWER
    assert r.choices[0].finish_reason == "stop"
    u = r.usage
    assert u.prompt_tokens > 20 and u.completion_tokens == 7
    assert u.total_tokens == u.prompt_tokens + u.completion_tokens
    # Earlier requests may have left the shared system prompt in the prefix cache, never all.
    assert 0 <= u.prompt_tokens_details.cached_tokens < u.prompt_tokens


def test_stream_matches_non_stream_and_reports_usage(client, model_id) -> None:
    stream = client.chat.completions.create(
        model=model_id,
        messages=QUESTION,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    contents = [
        c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content
    ]
    assert "".join(contents) == ANSWER
    assert len(contents) > 3  # streamed token by token, not one blob
    finals = [
        c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason
    ]
    assert finals == ["stop"]
    usage = chunks[-1].usage
    assert chunks[-1].choices == [] and usage.completion_tokens == 7
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert all(c.usage is None for c in chunks[:-1])


def test_every_chunk_names_the_canonical_model(client, model_id) -> None:
    chunks = list(
        client.chat.completions.create(
            model=model_id.upper(), messages=QUESTION, stream=True, max_tokens=2
        )
    )
    assert {c.model for c in chunks} == {model_id} and len({c.id for c in chunks}) == 1


def test_stream_without_usage_has_no_usage_chunk(client, model_id) -> None:
    chunks = list(
        client.chat.completions.create(
            model=model_id, messages=QUESTION, temperature=0, stream=True, max_tokens=3
        )
    )
    assert all(c.usage is None for c in chunks)
    assert chunks[-1].choices[0].finish_reason == "length"


def test_max_tokens_and_max_completion_tokens_give_length(client, model_id) -> None:
    r = client.chat.completions.create(
        model=model_id, messages=QUESTION, max_tokens=3, temperature=0
    )
    assert (r.choices[0].finish_reason, r.usage.completion_tokens) == ("length", 3)
    assert r.choices[0].message.content == "The capital of"
    r = client.chat.completions.create(model=model_id, messages=QUESTION, max_completion_tokens=2)
    assert r.usage.completion_tokens == 2


@pytest.mark.parametrize(
    ("stop", "expected"),
    [
        ("Paris", "The capital of France is "),
        ([" of Fr", "zzz"], "The capital"),  # " of Fr" spans tokens (" of", " France")
    ],
)
def test_stop_strings_never_leak(client, model_id, stop, expected) -> None:
    r = client.chat.completions.create(model=model_id, messages=QUESTION, temperature=0, stop=stop)
    assert (r.choices[0].message.content, r.choices[0].finish_reason) == (expected, "stop")
    streamed = "".join(
        c.choices[0].delta.content or ""
        for c in client.chat.completions.create(
            model=model_id, messages=QUESTION, temperature=0, stop=stop, stream=True
        )
        if c.choices
    )
    assert streamed == expected


def test_system_and_developer_messages_and_text_parts(client, model_id) -> None:
    r = client.chat.completions.create(
        model=model_id,
        temperature=0,
        max_tokens=12,
        messages=[
            {"role": "developer", "content": "Answer in one word."},
            {
                "role": "user",
                "content": [{"type": "text", "text": "Name the capital of France."}],
            },
        ],
    )
    assert "Paris" in r.choices[0].message.content


def test_seed_makes_sampling_repeatable(client, model_id) -> None:
    def sample(seed: int) -> str:
        return (
            client.chat.completions.create(
                model=model_id, messages=QUESTION, temperature=1.0, seed=seed, max_tokens=12
            )
            .choices[0]
            .message.content
        )

    assert sample(7) == sample(7)


def test_models_list_and_retrieve(client, model_id) -> None:
    assert model_id in [m.id for m in client.models.list().data]
    model = client.models.retrieve(model_id)
    assert model.id == model_id and model.owned_by == "osaurus"
    assert time.time() - 86400 < model.created <= time.time()  # imported by this test session
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("no-such-model")


def test_unknown_model_is_404_model_not_found(client) -> None:
    for stream in (False, True):
        with pytest.raises(openai.NotFoundError) as info:
            client.chat.completions.create(model="gpt-4o", messages=QUESTION, stream=stream)
        err = info.value.body
        assert err["code"] == "model_not_found" and err["param"] == "model"
        assert "gpt-4o" in err["message"]


def test_context_length_exceeded_is_400(client, model_id) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(
            model=model_id, messages=[{"role": "user", "content": "word " * 9000}]
        )
    assert info.value.body["code"] == "context_length_exceeded"
    assert "8192" in info.value.body["message"]


def test_sse_wire_format(server, model_id) -> None:
    body = {"model": model_id, "messages": QUESTION, "stream": True, "max_tokens": 3}
    with httpx.stream("POST", f"{server.http_url}/v1/chat/completions", json=body, timeout=60) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        data = [line[len("data: ") :] for line in r.iter_lines() if line.startswith("data: ")]
    assert data[-1] == "[DONE]" and len(data) >= 4


def test_health_and_root(server, model_id) -> None:
    health = httpx.get(f"{server.http_url}/health").json()
    assert health["status"] == "ok" and health["grpc_reachable"] is True
    assert health["version"]
    assert "osaurus" in httpx.get(f"{server.http_url}/").text


def test_client_disconnect_mid_stream_frees_the_engine(server, model_id) -> None:
    body = {
        "model": model_id,
        "messages": COUNTING,
        "stream": True,
        "max_tokens": 1000,
        "temperature": 0,
        "session_id": "disconnect",
    }
    with httpx.stream("POST", f"{server.http_url}/v1/chat/completions", json=body, timeout=60) as r:
        lines = r.iter_lines()
        seen = 0
        for line in lines:
            seen += line.startswith("data: ")
            if seen >= 3:
                break
    with open_channel(server.grpc_target) as channel:
        assert wait_until_idle(channel, within=60)
        # Were the disconnect ignored, the session would hold the prompt and 1000 tokens.
        assert 0 < kept_tokens(channel, "disconnect") < 500


def test_keep_alive_zero_unloads_the_model_after_the_request(client, server, model_id) -> None:
    from osaurus.v1 import model_pb2, model_pb2_grpc

    client.chat.completions.create(
        model=model_id, messages=QUESTION, max_tokens=2, extra_body={"keep_alive": 0}
    )
    with open_channel(server.grpc_target) as channel:
        models = model_pb2_grpc.ModelServiceStub(channel)
        for _ in range(50):
            if not models.GetModel(model_pb2.GetModelRequest(id=model_id)).model.loaded:
                break
            time.sleep(0.1)
        assert not models.GetModel(model_pb2.GetModelRequest(id=model_id)).model.loaded
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(
            model=model_id, messages=QUESTION, max_tokens=2, extra_body={"keep_alive": "soon"}
        )
    assert info.value.body["param"] == "keep_alive"


def test_logprobs_are_the_greedy_distribution(client, model_id) -> None:
    r = client.chat.completions.create(
        model=model_id, messages=QUESTION, temperature=0, logprobs=True, top_logprobs=5
    )
    content = r.choices[0].logprobs.content
    assert "".join(t.token for t in content) == ANSWER == r.choices[0].message.content
    assert len(content) == r.usage.completion_tokens
    for t in content:
        assert t.logprob <= 0 and len(t.top_logprobs) == 5
        assert t.top_logprobs[0].token == t.token  # greedy: the most likely token was chosen
        assert abs(t.top_logprobs[0].logprob - t.logprob) < 1e-5
        tops = [a.logprob for a in t.top_logprobs]
        assert tops == sorted(tops, reverse=True) and sum(math.exp(v) for v in tops) <= 1 + 1e-4
        assert bytes(t.bytes).decode() == t.token
    streamed = [
        t
        for c in client.chat.completions.create(
            model=model_id, messages=QUESTION, temperature=0, logprobs=True, stream=True
        )
        if c.choices and c.choices[0].logprobs
        for t in c.choices[0].logprobs.content
    ]
    assert [(t.token, round(t.logprob, 4)) for t in streamed] == [
        (t.token, round(t.logprob, 4)) for t in content
    ]
    plain = client.chat.completions.create(model=model_id, messages=QUESTION, max_tokens=2)
    assert plain.choices[0].logprobs is None


def test_completions_raw_prompt_echo_logprobs_and_token_ids(client, model_id, server) -> None:
    prompt = "The capital of France is"
    r = client.completions.create(model=model_id, prompt=prompt, max_tokens=3, temperature=0)
    assert r.object == "text_completion" and r.id.startswith("cmpl-")
    (choice,) = r.choices
    assert choice.finish_reason == "length" and r.usage.completion_tokens == 3
    assert choice.text.startswith(" Paris")  # no chat template: the text continues, space and all
    echoed = client.completions.create(
        model=model_id, prompt=prompt, max_tokens=3, temperature=0, echo=True
    )
    assert echoed.choices[0].text == prompt + choice.text
    scored = client.completions.create(
        model=model_id, prompt=prompt, max_tokens=3, temperature=0, logprobs=2
    )
    lp = scored.choices[0].logprobs
    assert "".join(lp.tokens) == choice.text and len(lp.token_logprobs) == 3
    assert all(v <= 0 for v in lp.token_logprobs)
    assert all(
        max(top, key=top.get) == tok for top, tok in zip(lp.top_logprobs, lp.tokens, strict=True)
    )
    assert lp.text_offset[0] == 0 and lp.text_offset[1] == len(lp.tokens[0])
    # The same prompt as token ids (the model's own tokenizer) continues the same way.
    tokenizer = Tokenizer.from_file(str(server.models_dir / model_id / "tokenizer.json"))
    ids = tokenizer.encode(prompt, add_special_tokens=False).ids
    by_ids = client.completions.create(model=model_id, prompt=ids, max_tokens=3, temperature=0)
    assert by_ids.usage.prompt_tokens == len(ids) and by_ids.choices[0].text == choice.text
    streamed = "".join(
        c.choices[0].text
        for c in client.completions.create(
            model=model_id, prompt=prompt, max_tokens=3, temperature=0, stream=True
        )
        if c.choices
    )
    assert streamed == choice.text
    two = client.completions.create(
        model=model_id, prompt=[prompt, "One, two,"], max_tokens=2, temperature=0
    )
    assert [c.index for c in two.choices] == [0, 1] and two.usage.completion_tokens == 4
    assert all(c.text for c in two.choices)


def test_completions_refuse_what_they_cannot_do(client, model_id) -> None:
    for extra, param in (
        ({"best_of": 2}, "best_of"),
        ({"suffix": "end"}, "suffix"),
        ({"echo": True, "logprobs": 1}, "echo"),
        ({"logprobs": 6}, "logprobs"),
    ):
        with pytest.raises(openai.BadRequestError) as info:
            client.completions.create(model=model_id, prompt="Hi", **extra)
        assert info.value.status_code == 400
        if param:
            assert info.value.body["param"] == param
