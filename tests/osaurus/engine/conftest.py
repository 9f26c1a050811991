"""In-process engines on the real test model (no transport), for batching and cache tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from engine_helpers import make_engine

from osaurus.engine.engine import Engine


@pytest.fixture(scope="module")
def engine(models_dir: Path) -> Iterator[Engine]:
    running = make_engine(models_dir)
    yield running
    running.shutdown()


@pytest.fixture(scope="module")
def engine_without_reuse(models_dir: Path) -> Iterator[Engine]:
    """No prefix cache, and tests send it no session ids: every prompt is prefilled whole."""
    running = make_engine(models_dir, prefix_cache=False)
    yield running
    running.shutdown()
