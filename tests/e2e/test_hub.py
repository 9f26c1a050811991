"""Hugging Face search and pull against a local server speaking the hub's protocol."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest
from helpers import hub_env, start_server

from osaurus.child_server import ChildServer
from osaurus.client import open_channel
from osaurus.v1 import inference_pb2 as ipb
from osaurus.v1 import inference_pb2_grpc, model_pb2, model_pb2_grpc

REPO = "mlx-community/SmolLM2-135M-Instruct-4bit"
GATED = "mlx-community/Gated-Model-4bit"


def stub(server: ChildServer) -> model_pb2_grpc.ModelServiceStub:
    return model_pb2_grpc.ModelServiceStub(open_channel(server.grpc_target))


def test_search_reports_sizes_compatibility_and_suggestions(hub_server, models_dir, model_id):
    found = stub(hub_server).SearchModels(model_pb2.SearchModelsRequest(query="smollm2"))
    (model,) = found.models
    expected = sum(p.stat().st_size for p in (models_dir / model_id).iterdir())
    assert (model.repo_id, model.local_id) == (REPO, REPO.lower())
    assert model.size_bytes == expected and model.mlx_compatible and not model.downloaded
    assert model.downloads == 500 and model.likes == 7
    assert found.suggestions and all(s.startswith("mlx-community/") for s in found.suggestions)


def test_pull_streams_progress_then_the_model_generates(hub_server, hub) -> None:
    hub.bytes_per_second = 40e6  # a few progress events
    try:
        events = list(stub(hub_server).PullModel(model_pb2.PullModelRequest(repo_id=REPO)))
    finally:
        hub.bytes_per_second = None
    progress = [e.progress for e in events if e.HasField("progress")]
    assert len(progress) >= 2
    assert [p.bytes_done for p in progress] == sorted(p.bytes_done for p in progress)
    assert progress[-1].bytes_done == progress[-1].bytes_total > 90_000_000
    done = events[-1].done
    assert done.model.id == REPO.lower() and not done.already_present

    inference = inference_pb2_grpc.InferenceServiceStub(open_channel(hub_server.grpc_target))
    request = ipb.GenerateRequest(
        model=REPO.lower(),
        chat=ipb.Chat(
            messages=[ipb.ChatMessage(role=ipb.ROLE_USER, content="Name the capital of France.")]
        ),
        max_tokens=12,
    )
    text = "".join(e.delta.text for e in inference.Generate(request) if e.HasField("delta"))
    assert "Paris" in text

    again = list(stub(hub_server).PullModel(model_pb2.PullModelRequest(repo_id=REPO)))
    assert again[-1].done.already_present and len(again) == 1


def test_a_cancelled_pull_leaves_nothing_behind(hub_server, hub) -> None:
    hub.bytes_per_second = 10e6  # ~10 s for the whole model
    try:
        call = stub(hub_server).PullModel(model_pb2.PullModelRequest(repo_id=REPO))
        for event in call:
            if event.HasField("progress") and event.progress.bytes_done > 20_000_000:
                break
        call.cancel()
        time.sleep(1)
        listed = stub(hub_server).ListModels(model_pb2.ListModelsRequest()).models
        assert REPO.lower() not in [m.id for m in listed]
        assert not (hub_server.models_dir / REPO).exists()
        assert not [p for p in hub_server.models_dir.rglob("*") if p.is_file()]
    finally:
        hub.bytes_per_second = None


def test_an_interrupted_download_resumes_where_it_stopped(hub_server, hub) -> None:
    hub.cut_after = 30_000_000  # the connection drops once, 30 MB into the weights
    hub.requests.clear()
    events = list(stub(hub_server).PullModel(model_pb2.PullModelRequest(repo_id=REPO)))
    assert events[-1].done.model.id == REPO.lower()
    gets = [r for method, path, r in hub.requests if method == "GET" and "safetensors" in path]
    assert len(gets) == 2 and gets[1] is not None and gets[1] != "bytes=0-"  # resumed, not redone


@pytest.mark.parametrize(
    ("repo", "code", "fragment"),
    [
        ("mlx-community/nope", grpc.StatusCode.NOT_FOUND, "no model"),
        (GATED, grpc.StatusCode.PERMISSION_DENIED, "gated"),
        ("someone/not-mlx", grpc.StatusCode.INVALID_ARGUMENT, "does not look like an MLX model"),
        ("no-slash", grpc.StatusCode.INVALID_ARGUMENT, "org/name"),
    ],
)
def test_hub_errors_have_their_codes(hub_server, repo, code, fragment) -> None:
    with pytest.raises(grpc.RpcError) as info:
        list(stub(hub_server).PullModel(model_pb2.PullModelRequest(repo_id=repo)))
    assert info.value.code() == code and fragment in info.value.details()


def test_an_unreachable_hub_is_unavailable(tmp_path: Path) -> None:
    server = start_server(
        tmp_path / "models",
        tmp_path / "server.log",
        "--no-default-model",
        env=hub_env("http://127.0.0.1:9", tmp_path / "hf-cache"),  # nothing listens there
    )
    try:
        started = time.monotonic()
        with pytest.raises(grpc.RpcError) as info:
            stub(server).SearchModels(model_pb2.SearchModelsRequest(query="x"))
        assert time.monotonic() - started < 10  # said within seconds, not after all retries
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "cannot reach Hugging Face" in info.value.details()
        curated = stub(server).SearchModels(model_pb2.SearchModelsRequest(curated_only=True))
        assert [m.repo_id for m in curated.models] == list(curated.suggestions)
        assert all(m.size_bytes > 0 and not m.downloaded for m in curated.models)
    finally:
        server.stop()


def ctl(server: ChildServer, *args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "osaurus.cli.ctl", "--target", server.grpc_target, *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


def test_the_cli_searches_pulls_and_explains_errors(hub_server, hub) -> None:
    found = json.loads(ctl(hub_server, "models", "search", "smollm2", "--json").stdout)
    assert found["models"][0]["repo_id"] == REPO
    table = ctl(hub_server, "models", "search", "smollm2").stdout
    assert REPO in table and "suggested:" in table

    pulled = ctl(hub_server, "pull", REPO)
    assert pulled.returncode == 0 and f"pulled {REPO.lower()}" in pulled.stdout
    again = ctl(hub_server, "pull", REPO)
    assert "already here" in again.stdout

    # Pulled again after rm: the files come from the Hugging Face cache, not the network.
    assert ctl(hub_server, "rm", REPO.lower()).returncode == 0
    hub.requests.clear()
    assert ctl(hub_server, "pull", REPO).returncode == 0
    assert not [p for m, p, _ in hub.requests if m == "GET" and "/resolve/" in p]

    missing = ctl(hub_server, "pull", "mlx-community/nope")
    assert missing.returncode == 1 and "NOT_FOUND" in missing.stderr
    assert "Traceback" not in missing.stderr
    assert ctl(hub_server, "rm", REPO.lower()).returncode == 0


def test_ollama_pull_streams_its_statuses_then_delete(hub_server, hub) -> None:
    import ollama

    client = ollama.Client(host=hub_server.http_url, timeout=120)
    hub.bytes_per_second = 40e6  # a few progress lines
    try:
        statuses = list(client.pull(REPO, stream=True))
    finally:
        hub.bytes_per_second = None
    assert statuses[0].status == "pulling manifest"
    assert [s.status for s in statuses[-3:]] == [
        "verifying sha256 digest",
        "writing manifest",
        "success",
    ]
    progress = [s for s in statuses if s.completed is not None]
    assert len(progress) >= 2 and progress[-1].completed == progress[-1].total > 90_000_000
    assert all(s.digest.startswith("sha256:") for s in progress)
    assert [s.completed for s in progress] == sorted(s.completed for s in progress)

    name = f"{REPO.lower()}:latest"
    assert name in {m.model for m in client.list().models}
    assert client.pull(REPO).status == "success"  # already here: at once
    assert client.delete(name).status == "success"
    assert name not in {m.model for m in client.list().models}
    with pytest.raises(ollama.ResponseError) as info:
        client.delete(name)
    assert info.value.status_code == 404
    with pytest.raises(ollama.ResponseError) as info:
        client.pull("someone/not-mlx")
    assert info.value.status_code == 400 and "MLX" in info.value.error
