"""Fixtures of the e2e tests that talk to the hub: a local server speaking its protocol, and an
osaurus server pointed at it (with an empty models directory)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from browser_helpers import CHROMIUM, CHROMIUM_ARGS
from fake_hub import FakeHub, repo_from_directory
from helpers import hub_env, start_server

from osaurus.child_server import ChildServer

REPO = "mlx-community/SmolLM2-135M-Instruct-4bit"
GATED = "mlx-community/Gated-Model-4bit"


@pytest.fixture(scope="module")
def hub(models_dir: Path, model_id: str) -> Iterator[FakeHub]:
    with FakeHub() as running:
        running.add(repo_from_directory(REPO, models_dir / model_id, downloads=500, likes=7))
        running.add(repo_from_directory(GATED, models_dir / model_id, gated=True))
        running.add(repo_from_directory("someone/not-mlx", models_dir / model_id, tags=[]))
        yield running


@pytest.fixture
def hub_server(hub: FakeHub, tmp_path: Path) -> Iterator[ChildServer]:
    server = start_server(
        tmp_path / "models",
        tmp_path / "server.log",
        "--no-default-model",
        env=hub_env(hub.endpoint, tmp_path / "hf-cache"),
    )
    yield server
    server.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator:
    """Debian's chromium, driven by Playwright; a failure on CI, where .ci/run installs it."""
    playwright = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail("chromium is missing: .ci/run installs it (apt-get install chromium)")
        pytest.skip("no chromium here: apt-get install chromium")
    with playwright.sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()
