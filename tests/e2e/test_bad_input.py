"""Bad input on the real server: a matrix of malformed requests over every API family and gRPC,
each with its status and a message naming the problem; then random and truncated bytes sent to
every gRPC method end in clean errors (never INTERNAL or UNKNOWN) and the server keeps serving."""

from __future__ import annotations

import random

import grpc
import httpx
import pytest
from google.protobuf import message_factory
from grpc_health.v1 import health_pb2, health_pb2_grpc
from helpers import start_server

from osaurus.server import SERVICE_NAMES
from osaurus.v1 import inference_pb2, model_pb2, model_pb2_grpc, session_pb2, system_pb2

M = "smollm2-135m-instruct"
USER = [{"role": "user", "content": "Hi"}]
CHAT = {"model": M, "messages": USER}
ANTHROPIC = {"model": M, "max_tokens": 8, "messages": USER}

# (method, path, body, status, what the message must say)
REST_CASES = [
    ("POST", "/v1/chat/completions", {"messages": USER}, 400, "model"),
    ("POST", "/v1/chat/completions", {"model": M}, 400, "messages"),
    ("POST", "/v1/chat/completions", {**CHAT, "messages": []}, 400, "messages"),
    ("POST", "/v1/chat/completions", {**CHAT, "temperature": 3}, 400, "temperature"),
    ("POST", "/v1/chat/completions", {**CHAT, "top_p": -1}, 400, "top_p"),
    ("POST", "/v1/chat/completions", {**CHAT, "max_tokens": -5}, 400, "max_tokens"),
    ("POST", "/v1/chat/completions", {**CHAT, "n": 3}, 400, "n"),
    ("POST", "/v1/chat/completions", {**CHAT, "model": "nope"}, 404, "nope"),
    ("POST", "/v1/chat/completions", {**CHAT, "stop": [""]}, 400, "stop"),
    ("POST", "/v1/chat/completions", {**CHAT, "stop": ["x"] * 17}, 400, "stop"),
    (
        "POST",
        "/v1/chat/completions",
        {**CHAT, "messages": [{"role": "wizard", "content": "x"}]},
        400,
        "role",
    ),
    ("POST", "/v1/chat/completions", {**CHAT, "tool_choice": "always"}, 400, "tool_choice"),
    (
        "POST",
        "/v1/chat/completions",
        {
            **CHAT,
            "tools": [{"type": "function", "function": {"name": "f"}}],
            "tool_choice": {"type": "function", "function": {"name": "g"}},
        },
        400,
        "g",
    ),
    ("POST", "/v1/chat/completions", {**CHAT, "response_format": {"type": "xml"}}, 400, "type"),
    ("POST", "/v1/chat/completions", {**CHAT, "logprobs": True, "top_logprobs": 50}, 400, "20"),
    ("POST", "/v1/chat/completions", {**CHAT, "reasoning_effort": "max"}, 400, "effort"),
    ("POST", "/v1/chat/completions", [1, 2], 400, "JSON object"),
    ("POST", "/v1/completions", {"model": M}, 400, "prompt"),
    ("POST", "/v1/completions", {"model": M, "prompt": "x", "best_of": 3}, 400, "best_of"),
    ("POST", "/v1/completions", {"model": M, "prompt": "x", "suffix": "y"}, 400, "suffix"),
    ("POST", "/v1/completions", {"model": M, "prompt": [2**40]}, 400, "prompt"),
    ("POST", "/v1/embeddings", {"model": M, "input": "x"}, 400, "embedding"),
    ("POST", "/v1/embeddings", {"model": "all-minilm-l6-v2"}, 400, "input"),
    ("POST", "/v1/responses", {"model": M}, 400, "input"),
    ("POST", "/v1/responses", {"model": M, "input": "x", "previous_response_id": "r"}, 404, "r"),
    ("POST", "/v1/responses", {"model": M, "input": "x", "truncation": "x"}, 400, "truncation"),
    ("GET", "/v1/responses/nope", None, 404, "nope"),
    ("GET", "/v1/models/nope", None, 404, "nope"),
    ("GET", "/v1/nowhere", None, 404, "Unknown request URL"),
    ("POST", "/v1/messages", {"model": M, "messages": USER}, 400, "max_tokens"),
    ("POST", "/v1/messages", {**ANTHROPIC, "temperature": 1.5}, 400, "temperature"),
    ("POST", "/v1/messages", {**ANTHROPIC, "model": "nope"}, 404, "nope"),
    (
        "POST",
        "/v1/messages",
        {
            **ANTHROPIC,
            "tool_choice": {"type": "tool"},
            "tools": [{"name": "f", "input_schema": {}}],
        },
        400,
        "tool_choice.name",
    ),
    ("POST", "/v1/messages/count_tokens", {"model": M}, 400, "messages"),
    (
        "POST",
        "/api/chat",
        {"model": M, "messages": USER, "stream": False, "options": {"num_predict": -7}},
        400,
        "num_predict",
    ),
    ("POST", "/api/chat", {"model": "nope", "messages": USER, "stream": False}, 404, "nope"),
    ("POST", "/api/generate", {"model": M, "prompt": "x", "suffix": "y"}, 400, "suffix"),
    ("POST", "/api/generate", {"model": M, "prompt": "x", "images": ["aGk="]}, 400, "image"),
    ("POST", "/api/show", {"model": "nope"}, 404, "nope"),
    ("POST", "/api/embed", {"model": "all-minilm-l6-v2", "input": ""}, 400, "input"),
    ("POST", "/api/embeddings", {"model": M, "prompt": "x", "keep_alive": "soon"}, 400, "soon"),
    ("DELETE", "/api/delete", {"model": "nope"}, 404, "nope"),
    ("POST", "/osaurus/v1/models/nope/load", None, 404, "nope"),
    ("POST", "/osaurus/v1/models/import", {"gguf_path": "/nowhere.gguf"}, 404, "nowhere"),
    ("GET", "/osaurus/v1/system/stats?interval_seconds=0", None, 400, "interval_seconds"),
]


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "fragment"),
    REST_CASES,
    ids=[f"{m} {p} {i}" for i, (m, p, *_) in enumerate(REST_CASES)],
)
def test_malformed_rest_requests(server, method, path, body, status, fragment) -> None:
    r = httpx.request(method, f"{server.http_url}{path}", json=body, timeout=60)
    assert r.status_code == status, r.text
    answer = r.json()
    error = answer.get("error", answer)
    message = error if isinstance(error, str) else error.get("message", "")
    assert fragment.lower() in message.lower(), message


def test_the_matrix_is_large() -> None:
    assert len(REST_CASES) >= 40


FILES = (inference_pb2, model_pb2, session_pb2, system_pb2)
CLEAN = {
    grpc.StatusCode.OK,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.ALREADY_EXISTS,
    grpc.StatusCode.UNAVAILABLE,  # the hub, which this server can't reach
    grpc.StatusCode.PERMISSION_DENIED,
    grpc.StatusCode.DEADLINE_EXCEEDED,  # a stream that decoded and runs
}


def _methods():
    services = {s.full_name: s for f in FILES for s in f.DESCRIPTOR.services_by_name.values()}
    for name in SERVICE_NAMES:
        yield from services[name].methods


def _payloads(method, rng: random.Random) -> list[bytes]:
    valid = message_factory.GetMessageClass(method.input_type)()
    for field in valid.DESCRIPTOR.fields:  # a few fields set, to truncate something real
        if field.type == field.TYPE_STRING and not field.is_repeated:
            setattr(valid, field.name, "abcdefgh")
    whole = valid.SerializeToString()
    randoms = [rng.randbytes(rng.randint(1, 64)) for _ in range(6)]
    return [*randoms, whole[: len(whole) // 2], b"\xff\xff\xff", b"\x0a\x80"]


def test_random_bytes_to_every_grpc_method_end_cleanly(server) -> None:
    rng = random.Random(1234)
    with grpc.insecure_channel(server.grpc_target) as channel:
        for method in _methods():
            path = f"/{method.containing_service.full_name}/{method.name}"
            kind = channel.unary_stream if method.server_streaming else channel.unary_unary
            call = kind(path)  # no serializers: the bytes go as they are
            for payload in _payloads(method, rng):
                try:
                    if method.server_streaming:
                        stream = call(payload, timeout=10)
                        next(stream, None)
                        stream.cancel()
                    else:
                        call(payload, timeout=10)
                    code = grpc.StatusCode.OK
                except grpc.RpcError as exc:
                    code = exc.code()
                    if code == grpc.StatusCode.CANCELLED:
                        code = grpc.StatusCode.OK  # ours, after the first message
                assert code in CLEAN, (path, payload, code)
        health = health_pb2_grpc.HealthStub(channel)
        reply = health.Check(health_pb2.HealthCheckRequest())
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
    chat = {"model": M, "messages": USER, "max_tokens": 2}
    assert httpx.post(f"{server.http_url}/v1/chat/completions", json=chat, timeout=60).is_success


def test_an_endless_keep_alive_means_forever_and_the_server_keeps_serving(
    scratch_models_dir, tmp_path
) -> None:
    """Found by the fuzzer (test_fuzz_openapi): keep_alive 1e300 made an infinite deadline that
    killed the engine thread, and every request after it hung."""
    server = start_server(scratch_models_dir, tmp_path / "server.log", "--no-default-model")
    try:
        with httpx.Client(base_url=server.http_url, timeout=60) as http:
            loaded = http.post("/api/generate", json={"model": M, "keep_alive": 1e300})
            assert loaded.status_code == 200, loaded.text
            (running,) = http.get("/api/ps").json()["models"]
            assert running["name"].startswith(M)
            answer = http.post("/v1/chat/completions", json={**CHAT, "max_tokens": 4})
            assert answer.status_code == 200, answer.text
        with grpc.insecure_channel(server.grpc_target) as channel:
            models = model_pb2_grpc.ModelServiceStub(channel)
            with pytest.raises(grpc.RpcError) as info:
                models.LoadModel(model_pb2.LoadModelRequest(id=M, keep_alive_seconds=float("nan")))
            assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "keep_alive_seconds" in info.value.details()
    finally:
        server.stop()
