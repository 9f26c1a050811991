"""API keys on a real server: every gRPC method and every REST route (walked from the service
descriptors and /openapi.json, so a new one can't be forgotten) refuses a call without a key,
and serves one with it; the official clients, osaurus-ctl and the dashboard present keys; the
key file is read again on SIGHUP; an exposed address without keys refuses to start."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import anthropic
import grpc
import httpx
import openai
import pytest
from browser_helpers import Dashboard
from google.protobuf import message_factory
from grpc_health.v1 import health_pb2, health_pb2_grpc
from helpers import start_server

from osaurus.child_server import osaurus_command
from osaurus.client import key_metadata, open_channel
from osaurus.server import SERVICE_NAMES
from osaurus.v1 import (
    inference_pb2,
    model_pb2,
    model_pb2_grpc,
    session_pb2,
    system_pb2,
    system_pb2_grpc,
)

KEY, FILE_KEY = "k-flag-0123456789", "k-file-9876543210"
READ_ONLY_KEY, FILE_READ_ONLY_KEY = "k-ro-flag-13579", "k-ro-file-24680"
# Every method of the contract, as a read-only key sees it; a new method fails the test below
# until it is put in one of the two.
ADMIN_ONLY = {
    "ModelService." + name
    for name in ("PullModel", "ImportModel", "CopyModel", "DeleteModel", "LoadModel", "UnloadModel")
}
READ_ONLY_MAY = {
    "InferenceService.Generate",
    "InferenceService.CountTokens",
    "InferenceService.Embed",
    "ModelService.ListModels",
    "ModelService.GetModel",
    "ModelService.SearchModels",
    "SessionService.ListSessions",
    "SessionService.GetSession",
    "SessionService.DeleteSession",
    "SystemService.GetStatus",
    "SystemService.WatchSystemStats",
    "SystemService.Authenticate",
    "SystemService.GetMetrics",
}
OPEN_ROUTES = {"/", "/health", "/openapi.json"}
FILES = (inference_pb2, model_pb2, session_pb2, system_pb2)


@pytest.fixture(scope="module")
def key_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("keys") / "keys"
    path.write_text(f"# the operators' keys\n{FILE_KEY}\n{FILE_READ_ONLY_KEY} read-only\n")
    return path


@pytest.fixture(scope="module")
def keyed(models_dir, key_file, tmp_path_factory):
    logs = tmp_path_factory.mktemp("keyed") / "server.log"
    server = start_server(
        models_dir, logs, "--no-default-model", "--api-key", KEY, "--api-key-file", str(key_file),
        "--read-only-api-key", READ_ONLY_KEY,
    )  # fmt: skip
    yield server
    server.stop()


def _methods():
    services = {s.full_name: s for f in FILES for s in f.DESCRIPTOR.services_by_name.values()}
    assert set(services) == set(SERVICE_NAMES)  # every service the server runs
    for name in SERVICE_NAMES:
        yield from services[name].methods


def _call(channel: grpc.Channel, method, metadata) -> grpc.StatusCode:
    """The status of one call with an empty request (a stream's first message is enough)."""
    request = message_factory.GetMessageClass(method.input_type)()
    response = message_factory.GetMessageClass(method.output_type)
    path = f"/{method.containing_service.full_name}/{method.name}"
    kind = channel.unary_stream if method.server_streaming else channel.unary_unary
    call = kind(path, request_serializer=type(request).SerializeToString,
                response_deserializer=response.FromString)  # fmt: skip
    try:
        if method.server_streaming:
            stream = call(request, metadata=metadata, timeout=30)
            next(stream, None)
            stream.cancel()
        else:
            call(request, metadata=metadata, timeout=30)
    except grpc.RpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


def test_every_rpc_needs_a_key_but_health_and_reflection(keyed) -> None:
    methods = list(_methods())
    assert len(methods) >= 18
    with grpc.insecure_channel(keyed.grpc_target) as channel:
        for method in methods:
            name = f"{method.containing_service.name}.{method.name}"
            assert _call(channel, method, None) == grpc.StatusCode.UNAUTHENTICATED, name
            wrong = [key_metadata("not-the-key")]
            assert _call(channel, method, wrong) == grpc.StatusCode.UNAUTHENTICATED, name
            assert _call(channel, method, [key_metadata(KEY)]) != (
                grpc.StatusCode.UNAUTHENTICATED
            ), name
        health = health_pb2_grpc.HealthStub(channel)
        serving = health_pb2.HealthCheckResponse.SERVING
        assert health.Check(health_pb2.HealthCheckRequest()).status == serving
    with pytest.raises(grpc.RpcError) as info, grpc.insecure_channel(keyed.grpc_target) as channel:
        system_pb2_grpc.SystemServiceStub(channel).GetStatus(system_pb2.GetStatusRequest())
    assert "missing API key" in info.value.details()
    with open_channel(keyed.grpc_target, FILE_KEY) as channel:
        reply = system_pb2_grpc.SystemServiceStub(channel).Authenticate(
            system_pb2.AuthenticateRequest()
        )
        assert reply.keys_required


def test_a_read_only_key_may_generate_and_read_but_not_change_the_models(keyed) -> None:
    methods = {f"{m.containing_service.name}.{m.name}": m for m in _methods()}
    assert set(methods) == ADMIN_ONLY | READ_ONLY_MAY, "classify the new method"
    with grpc.insecure_channel(keyed.grpc_target) as channel:
        for key in (READ_ONLY_KEY, FILE_READ_ONLY_KEY):
            for name, method in methods.items():
                code = _call(channel, method, [key_metadata(key)])
                if name in ADMIN_ONLY:
                    assert code == grpc.StatusCode.PERMISSION_DENIED, name
                else:
                    assert code not in (
                        grpc.StatusCode.PERMISSION_DENIED,
                        grpc.StatusCode.UNAUTHENTICATED,
                    ), name
            assert _call(channel, methods["ModelService.UnloadModel"], [key_metadata(KEY)]) != (
                grpc.StatusCode.PERMISSION_DENIED
            )
    with open_channel(keyed.grpc_target, READ_ONLY_KEY) as channel:
        stub = system_pb2_grpc.SystemServiceStub(channel)
        assert stub.Authenticate(system_pb2.AuthenticateRequest()).role == "read-only"
        with pytest.raises(grpc.RpcError) as info:
            model_pb2_grpc.ModelServiceStub(channel).DeleteModel(
                model_pb2.DeleteModelRequest(id="anything")
            )
        assert "read-only: DeleteModel needs an admin key" in info.value.details()
    with open_channel(keyed.grpc_target, KEY) as channel:
        stub = system_pb2_grpc.SystemServiceStub(channel)
        assert stub.Authenticate(system_pb2.AuthenticateRequest()).role == "admin"
    # Through the bridge: 403 in each family's shape; generation and reads are served.
    read_only = {"authorization": f"Bearer {READ_ONLY_KEY}"}
    with httpx.Client(base_url=keyed.http_url, timeout=60, headers=read_only) as http:
        pull = http.post("/api/pull", json={"model": "someone/some-model"})
        assert pull.status_code == 403 and "read-only" in pull.json()["error"]
        unload = http.post("/osaurus/v1/models/anything/unload")
        assert unload.status_code == 403, unload.text
        assert unload.json()["error"]["type"] == "permission_error"
        assert http.get("/v1/models").status_code == 200
        assert http.get("/api/tags").status_code == 200


def _family_refusal(path: str, response: httpx.Response) -> None:
    body = response.json()
    if path.startswith("/api/"):
        assert "API key" in body["error"]
    elif path.startswith("/v1/messages"):
        assert (body["type"], body["error"]["type"]) == ("error", "authentication_error")
    else:
        assert body["error"]["type"] == "authentication_error"
        assert "API key" in body["error"]["message"]


def test_every_route_needs_a_key_but_the_open_ones(keyed) -> None:
    with httpx.Client(base_url=keyed.http_url, timeout=60) as http:
        document = http.get("/openapi.json").json()
        routes = [(p, m.upper()) for p, ops in document["paths"].items() for m in ops]
        assert len(routes) >= 30
        for path, method in routes:
            url = re.sub(r"\{[^}]+\}", "x", path)
            body = {} if method in ("POST", "DELETE") else None
            if path in OPEN_ROUTES:
                assert http.request(method, url).status_code != 401, path
                continue
            for headers in ({}, {"authorization": "Bearer wrong"}, {"x-api-key": "wrong"}):
                refused = http.request(method, url, json=body, headers=headers)
                assert refused.status_code == 401, (path, headers, refused.text)
                _family_refusal(path, refused)
            for headers in ({"authorization": f"Bearer {KEY}"}, {"x-api-key": FILE_KEY}):
                with http.stream(method, url, json=body, headers=headers) as served:
                    assert served.status_code != 401, (path, headers)
        assert http.get("/ui/").status_code == 200  # the page itself asks for the key
        health = http.get("/health").json()
        assert health["status"] == "ok" and health["grpc_reachable"]


def test_the_official_clients_present_their_key(keyed, model_id) -> None:
    url = f"{keyed.http_url}/v1"
    chat = {"model": model_id, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 3}
    reply = openai.OpenAI(base_url=url, api_key=KEY).chat.completions.create(**chat)
    assert reply.choices[0].message.content
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=url, api_key="wrong", max_retries=0).chat.completions.create(**chat)
    with pytest.raises(anthropic.AuthenticationError):
        anthropic.Anthropic(
            base_url=keyed.http_url, api_key="wrong", max_retries=0
        ).messages.create(model=model_id, max_tokens=3, messages=chat["messages"])
    message = anthropic.Anthropic(base_url=keyed.http_url, api_key=KEY).messages.create(
        model=model_id, max_tokens=3, messages=chat["messages"]
    )
    assert message.content


def _ctl(server, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "osaurus.cli.ctl", "--target", server.grpc_target, *args]
    environ = {k: v for k, v in os.environ.items() if k != "OSU_API_KEY"}
    return subprocess.run(
        command, capture_output=True, text=True, timeout=60, env={**environ, **(env or {})}
    )


def test_osaurus_ctl_takes_the_key(keyed) -> None:
    refused = _ctl(keyed, "status")
    assert refused.returncode == 1 and "--api-key" in refused.stderr
    assert "missing API key" in refused.stderr
    assert _ctl(keyed, "status", "--api-key", KEY).returncode == 0
    assert _ctl(keyed, "models", "list", env={"OSU_API_KEY": FILE_KEY}).returncode == 0


def test_the_key_file_is_read_again_on_sighup(keyed, key_file) -> None:
    def accepted(key: str) -> bool:
        with open_channel(keyed.grpc_target, key) as channel:
            try:
                system_pb2_grpc.SystemServiceStub(channel).Authenticate(
                    system_pb2.AuthenticateRequest(), timeout=5
                )
                return True
            except grpc.RpcError as exc:
                assert exc.code() == grpc.StatusCode.UNAUTHENTICATED
                return False

    key_file.write_text("k-new-key-after-hup\n")
    keyed.process.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while not accepted("k-new-key-after-hup") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert accepted("k-new-key-after-hup") and not accepted(FILE_KEY) and accepted(KEY)
    key_file.write_text(f"{FILE_KEY}\n")
    keyed.process.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while not accepted(FILE_KEY) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert "k-new-key-after-hup" not in keyed.log() and KEY not in keyed.log()  # never logged


def test_the_dashboard_asks_for_the_key_once(browser, keyed, tmp_path) -> None:
    dashboard = Dashboard(browser, keyed.http_url, tmp_path)
    dashboard.by("api-key-input").fill("not-the-key")
    dashboard.by("api-key-save").click()
    dashboard.by("api-key-refused").wait_for()  # asked again: that one was refused
    dashboard.by("api-key-input").fill(KEY)
    dashboard.shoot("api-key")
    dashboard.by("api-key-save").click()
    assert dashboard.by("status-version").inner_text() == "0.1.0"
    dashboard.show("models")
    dashboard.by("model-row").first.wait_for()
    dashboard.page.reload()  # the key is kept for this browser
    dashboard.by("model-row").first.wait_for()
    assert dashboard.by("api-key-input").count() == 0
    # The calls refused (401) before the page had the key: the browser logs them.
    dashboard.errors[:] = [e for e in dashboard.errors if "401" not in e]
    dashboard.close()


def test_an_exposed_address_without_a_key_refuses_to_start(tmp_path) -> None:
    result = subprocess.run(
        osaurus_command("serve", "--host", "0.0.0.0", "--models-dir", str(tmp_path)),
        capture_output=True,
        text=True,
        timeout=60,
        env={k: v for k, v in os.environ.items() if k != "OSU_API_KEY"},
    )
    assert result.returncode == 1
    assert "--api-key" in result.stderr and "--insecure-no-auth" in result.stderr
