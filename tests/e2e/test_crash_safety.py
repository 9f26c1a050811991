"""kill -9 in the middle of what the server writes (a pull, a GGUF import, a copy) leaves no
half model: after a restart the models list holds only whole models and the staging directories
are gone. The same pull then fetches only what it lacks: the files it had downloaded whole stay
in the Hugging Face cache. (The file it was in the middle of starts over: huggingface_hub 2.x
downloads into a file unique to its process, by design, so another process can't resume it.)"""

from __future__ import annotations

import contextlib
import threading
import time
from pathlib import Path

import grpc
import pytest
from helpers import hub_env, start_server

from osaurus.client import open_channel
from osaurus.v1 import model_pb2, model_pb2_grpc

REPO = "mlx-community/SmolLM2-135M-Instruct-4bit"


def _models(server) -> model_pb2_grpc.ModelServiceStub:
    return model_pb2_grpc.ModelServiceStub(open_channel(server.grpc_target))


def _listed(server) -> list[str]:
    return [m.id for m in _models(server).ListModels(model_pb2.ListModelsRequest()).models]


def _staging(models_dir: Path) -> list[Path]:
    return [p for p in models_dir.rglob(".*-*-*") if p.is_dir()]


def _kill(server) -> None:
    server.process.kill()  # SIGKILL: no cleanup of any kind
    server.process.wait()


def _start(models_dir: Path, log: Path, environ: dict | None = None):
    return start_server(models_dir, log, "--no-default-model", env=environ)


def _in_background(fn) -> threading.Thread:
    thread = threading.Thread(target=lambda: _swallow(fn), daemon=True)
    thread.start()
    return thread


def _swallow(fn) -> None:
    with contextlib.suppress(grpc.RpcError):  # the server was killed under it: expected
        fn()


def test_a_pull_killed_midway_leaves_nothing_and_fetches_only_what_it_lacks(hub, tmp_path) -> None:
    models, cache = tmp_path / "models", tmp_path / "hf-cache"
    environ = hub_env(hub.endpoint, cache)
    hub.bytes_per_second = 10e6  # ~10 s for the model: time to kill it midway
    try:
        server = _start(models, tmp_path / "first.log", environ)
        call = _models(server).PullModel(model_pb2.PullModelRequest(repo_id=REPO))
        for event in call:
            if event.HasField("progress") and event.progress.bytes_done > 30_000_000:
                break
        _kill(server)
        hub.bytes_per_second = None
        hub.requests.clear()
        again = _start(models, tmp_path / "second.log", environ)
        try:
            assert REPO.lower() not in _listed(again) and not _staging(models)
            events = list(_models(again).PullModel(model_pb2.PullModelRequest(repo_id=REPO)))
            assert events[-1].done.model.id == REPO.lower() and REPO.lower() in _listed(again)
        finally:
            again.stop()
    finally:
        hub.bytes_per_second = None
    fetched = [path for method, path, _ in hub.requests if method == "GET" and "/resolve/" in path]
    assert fetched and all("safetensors" in path for path in fetched), fetched


@pytest.mark.parametrize("write", ["import", "copy"])
def test_an_import_or_copy_killed_midway_leaves_nothing(
    write, models_dir, model_id, gguf_path, tmp_path
) -> None:
    models = tmp_path / "models"
    models.mkdir()
    source = models_dir / model_id
    (models / model_id).symlink_to(source, target_is_directory=True)
    server = _start(models, tmp_path / "first.log")
    stub = _models(server)
    if write == "import":
        request = model_pb2.ImportModelRequest(gguf_path=str(gguf_path), name="killed")
        _in_background(lambda: stub.ImportModel(request))
    else:
        request = model_pb2.CopyModelRequest(source_id=model_id, destination_id="killed")
        _in_background(lambda: stub.CopyModel(request))
    deadline = time.monotonic() + 60
    while not _staging(models) and time.monotonic() < deadline:
        time.sleep(0.005)
    assert _staging(models), "the write never started"
    _kill(server)
    assert _staging(models)  # what the killed server left
    again = _start(models, tmp_path / "second.log")
    try:
        assert "killed" not in _listed(again) and not _staging(models)
        assert not (models / "killed").exists()
    finally:
        again.stop()
