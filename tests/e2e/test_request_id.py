"""Request ids on a real server with JSON logs: the client's x-request-id (or a new one) comes
back in the REST header and the gRPC trailing metadata, errors included, and the server's log
lines of that request name it."""

from __future__ import annotations

import json
import re
import time

import grpc
import httpx
import pytest
from helpers import start_server

from osaurus.client import open_channel
from osaurus.v1 import inference_pb2 as pb
from osaurus.v1 import inference_pb2_grpc

USER = [{"role": "user", "content": "Hi"}]


@pytest.fixture(scope="module")
def logged(models_dir, tmp_path_factory):
    log = tmp_path_factory.mktemp("json-logs") / "server.log"
    server = start_server(models_dir, log, "--no-default-model", "--log-format", "json")
    yield server
    server.stop()


def _log_lines(server) -> list[dict]:
    lines = []
    for line in server.log().splitlines():
        if line.startswith("{"):
            lines.append(json.loads(line))  # every line the server logs is JSON
    return lines


def _logged_with(server, request_id: str) -> list[dict]:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        found = [line for line in _log_lines(server) if line["request_id"] == request_id]
        if found:
            return found
        time.sleep(0.1)
    return []


def test_rest_requests_carry_their_id(logged, model_id) -> None:
    body = {"model": model_id, "messages": USER, "max_tokens": 3}
    with httpx.Client(base_url=logged.http_url, timeout=60) as http:
        r = http.post("/v1/chat/completions", json=body, headers={"x-request-id": "req-abc-123"})
        assert r.status_code == 200 and r.headers["x-request-id"] == "req-abc-123"
        made = http.post("/v1/chat/completions", json=body).headers["x-request-id"]
        assert re.fullmatch(r"[0-9a-f]{32}", made)
        refused = http.post("/v1/chat/completions", json={**body, "model": "nope"})
        assert refused.status_code == 404 and refused.headers["x-request-id"]
        bad = http.post("/v1/models", headers={"x-request-id": "bad id with spaces"})
        assert re.fullmatch(r"[0-9a-f]{32}", bad.headers["x-request-id"])  # not echoed
    finished = _logged_with(logged, "req-abc-123")
    assert finished and any(model_id in line["message"] for line in finished)
    assert {"time", "level", "logger", "message"} <= set(finished[0])


def test_grpc_calls_carry_their_id_in_trailing_metadata(logged, model_id) -> None:
    with open_channel(logged.grpc_target) as channel:
        stub = inference_pb2_grpc.InferenceServiceStub(channel)
        request = pb.GenerateRequest(model=model_id, prompt="Hi", max_tokens=2)
        call = stub.Generate(request, metadata=[("x-request-id", "grpc-req-1")])
        list(call)
        assert ("x-request-id", "grpc-req-1") in call.trailing_metadata()
        with pytest.raises(grpc.RpcError) as info:
            list(stub.Generate(pb.GenerateRequest(model="nope", prompt="x"),
                               metadata=[("x-request-id", "grpc-req-2")]))  # fmt: skip
        assert ("x-request-id", "grpc-req-2") in info.value.trailing_metadata()
        counted = stub.CountTokens.with_call(pb.CountTokensRequest(model=model_id, text="a"))[1]
        assert dict(counted.trailing_metadata())["x-request-id"]  # made when not given
    assert _logged_with(logged, "grpc-req-1")
