"""The bridge against a fake gRPC InferenceService: status -> HTTP mapping, a failure after the SSE
stream started, and request translation. (The real server is covered by tests/e2e.)"""

from __future__ import annotations

import json

import grpc
import pytest
from bridge_helpers import bridge_over

from osaurus.services.grpc_errors import rich_status
from osaurus.v1 import inference_pb2 as pb
from osaurus.v1 import inference_pb2_grpc


class FakeInference(inference_pb2_grpc.InferenceServiceServicer):
    """`model` picks the behaviour: "ok", "abort-<CODE>", "midstream" (a delta, then INTERNAL),
    "thinker" (reasoning deltas before the answer)."""

    def __init__(self) -> None:
        self.requests: list[pb.GenerateRequest] = []

    async def Generate(self, request: pb.GenerateRequest, context: grpc.aio.ServicerContext):
        self.requests.append(request)
        if request.model.startswith("abort-"):
            code = grpc.StatusCode[request.model.removeprefix("abort-")]
            status = rich_status(
                code, f"fake {code.name}", "FAKE_REASON", {"field": "sampling.top_p"}
            )
            await context.abort_with_status(status)
        yield pb.GenerateResponse(
            started=pb.GenerationStarted(model="served-model", prompt_tokens=4)
        )
        if request.model == "thinker":
            for piece in ("Let me ", "think."):
                yield pb.GenerateResponse(reasoning=pb.ReasoningDelta(text=piece))
        yield pb.GenerateResponse(delta=pb.TextDelta(text="Hi", token_ids=[1]))
        if request.model == "midstream":
            await context.abort(grpc.StatusCode.INTERNAL, "the engine fell over")
        yield pb.GenerateResponse(
            done=pb.GenerationDone(
                finish_reason=pb.FINISH_REASON_LENGTH,
                usage=pb.Usage(prompt_tokens=4, completion_tokens=1, total_tokens=5),
                model="served-model",
            )
        )


@pytest.fixture
async def bridge():
    fake = FakeInference()
    async with bridge_over(fake) as bridge:
        yield bridge.http, fake


def _body(model: str, **extra) -> dict:
    return {"model": model, "messages": [{"role": "user", "content": "hi"}], **extra}


@pytest.mark.parametrize(
    ("code", "status", "type_"),
    [
        ("INVALID_ARGUMENT", 400, "invalid_request_error"),
        ("UNAUTHENTICATED", 401, "authentication_error"),
        ("PERMISSION_DENIED", 403, "permission_error"),
        ("NOT_FOUND", 404, "invalid_request_error"),
        ("RESOURCE_EXHAUSTED", 429, "rate_limit_error"),
        ("CANCELLED", 499, "invalid_request_error"),
        ("INTERNAL", 500, "server_error"),
        ("UNAVAILABLE", 503, "server_error"),
        ("DEADLINE_EXCEEDED", 504, "server_error"),
    ],
)
async def test_grpc_status_becomes_http_status_and_openai_error(
    bridge, code, status, type_
) -> None:
    client, _ = bridge
    for stream in (False, True):
        r = await client.post("/v1/chat/completions", json=_body(f"abort-{code}", stream=stream))
        assert r.status_code == status
        error = r.json()["error"]
        assert error == {
            "message": f"fake {code}",
            "type": type_,
            "param": "top_p",
            "code": "fake_reason",
        }


async def test_failure_after_stream_start_is_one_error_event_then_done(bridge) -> None:
    client, _ = bridge
    r = await client.post("/v1/chat/completions", json=_body("midstream", stream=True))
    assert r.status_code == 200
    events = [line[6:] for line in r.text.splitlines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    payloads = [json.loads(e) for e in events[:-1]]
    assert payloads[1]["choices"][0]["delta"] == {"content": "Hi"}
    assert [p for p in payloads if "error" in p] == [payloads[-1]]
    assert payloads[-1]["error"]["message"] == "the engine fell over"
    assert payloads[-1]["error"]["type"] == "server_error"


async def test_request_translation(bridge) -> None:
    client, fake = bridge
    r = await client.post(
        "/v1/chat/completions",
        headers={"X-Session-Id": "from-header"},
        json=_body(
            "ok",
            temperature=0,
            top_k=5,
            seed=-1,
            stop="END",
            max_completion_tokens=9,
            messages=[
                {"role": "developer", "content": "be brief"},
                {
                    "role": "user",
                    "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
                },
            ],
        ),
    )
    assert r.status_code == 200
    body = r.json()
    assert body["model"] == "served-model" and body["choices"][0]["finish_reason"] == "length"
    assert body["usage"]["total_tokens"] == 5
    sent = fake.requests[-1]
    assert sent.session_id == "from-header"
    assert sent.sampling.HasField("temperature") and sent.sampling.temperature == 0
    assert not sent.sampling.HasField("top_p")
    assert (sent.sampling.top_k, sent.max_tokens, list(sent.stop)) == (5, 9, ["END"])
    assert sent.sampling.seed == 2**64 - 1
    assert [(m.role, m.content) for m in sent.chat.messages] == [
        (pb.ROLE_SYSTEM, "be brief"),
        (pb.ROLE_USER, "ab"),
    ]

    await client.post(
        "/v1/chat/completions", headers={"X-Session-Id": "h"}, json=_body("ok", session_id="body")
    )
    assert fake.requests[-1].session_id == "body"


async def test_speculative_is_sent_only_when_the_client_says(bridge) -> None:
    client, fake = bridge
    await client.post("/v1/chat/completions", json=_body("ok"))
    assert not fake.requests[-1].HasField("speculative")  # the server's setting decides
    for wanted in (False, True):
        await client.post("/v1/chat/completions", json=_body("ok", speculative=wanted))
        sent = fake.requests[-1]
        assert sent.HasField("speculative") and sent.speculative is wanted


async def test_reasoning_goes_to_reasoning_content_never_to_content(bridge) -> None:
    client, _ = bridge
    whole = (await client.post("/v1/chat/completions", json=_body("thinker"))).json()
    message = whole["choices"][0]["message"]
    assert message["reasoning_content"] == "Let me think." and message["content"] == "Hi"

    plain = (await client.post("/v1/chat/completions", json=_body("ok"))).json()
    assert "reasoning_content" not in plain["choices"][0]["message"]

    r = await client.post("/v1/chat/completions", json=_body("thinker", stream=True))
    deltas = [
        json.loads(line[6:])["choices"][0]["delta"]
        for line in r.text.splitlines()
        if line.startswith("data: {")
    ]
    assert "".join(d.get("reasoning_content", "") for d in deltas) == "Let me think."
    assert "".join(d.get("content") or "" for d in deltas) == "Hi"
    assert all(not ("reasoning_content" in d and d.get("content")) for d in deltas)
