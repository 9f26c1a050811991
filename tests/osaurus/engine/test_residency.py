"""Keep-alive and the memory budget: the bookkeeping alone, then with the real model."""

from __future__ import annotations

import asyncio
import shutil
import time
from dataclasses import replace
from pathlib import Path

import pytest
from engine_helpers import chat, make_engine, run

from osaurus.engine.residency import Residency, ResidencyPolicy, keep_alive_seconds
from osaurus.errors import FailedPrecondition, ResourceExhausted

GB = 1 << 30


def test_keep_alive_values() -> None:
    assert keep_alive_seconds(None, 300.0) == 300.0
    assert keep_alive_seconds(0, 300.0) == 0
    assert keep_alive_seconds(-1, 300.0) is None  # forever
    # Found by the fuzzer: 1e300 s became an infinite deadline that killed the engine thread.
    assert keep_alive_seconds(1e300, 300.0) is None
    assert keep_alive_seconds(float("inf"), 300.0) is None
    assert keep_alive_seconds(86400 * 365, 300.0) == 86400 * 365


def test_an_idle_model_expires_a_busy_one_never() -> None:
    idle = Residency(GB, keep_alive=10, last_used=100.0)
    busy = Residency(GB, keep_alive=10, last_used=0.0, busy=True)
    forever = Residency(GB, keep_alive=None, last_used=0.0)
    policy = ResidencyPolicy(memory_budget=10 * GB)
    models = {"idle": idle, "busy": busy, "forever": forever}
    assert policy.expired(models, now=109.0) == []
    assert policy.expired(models, now=110.0) == ["idle"]
    assert policy.next_deadline(models) == 110.0


def test_room_is_made_least_recently_used_first_and_never_from_busy_models() -> None:
    models = {
        "old": Residency(4 * GB, 300, last_used=1.0),
        "busy": Residency(4 * GB, 300, last_used=0.0, busy=True),
        "recent": Residency(4 * GB, 300, last_used=5.0),
    }
    policy = ResidencyPolicy(memory_budget=14 * GB)
    assert policy.make_room("new", 2 * GB, models) == []
    assert policy.make_room("new", 4 * GB, models) == ["old"]
    assert policy.make_room("new", 9 * GB, models) == ["old", "recent"]
    with pytest.raises(ResourceExhausted, match="busy"):
        policy.make_room("new", 11 * GB, models)
    idle = {name: r for name, r in models.items() if not r.busy}
    assert ResidencyPolicy(100 * GB, max_models=1).make_room("new", GB, idle) == [
        "old",
        "recent",
    ]
    assert ResidencyPolicy(100 * GB, max_models=2).make_room("new", GB, idle) == ["old"]
    with pytest.raises(ResourceExhausted, match="at most 2 loaded"):
        ResidencyPolicy(100 * GB, max_models=2).make_room(
            "new", GB, {"busy": models["busy"]} | {"busy2": Residency(GB, 300, busy=True)}
        )


async def test_keep_alive_zero_unloads_right_after_the_request(engine, model_id) -> None:
    await run(engine, replace(chat(model_id, "Hi", max_tokens=2), keep_alive=0))
    for _ in range(50):
        if not engine.is_loaded(model_id):
            break
        await asyncio.sleep(0.05)
    assert not engine.is_loaded(model_id)
    await run(engine, chat(model_id, "Hi", max_tokens=2))  # loads again on demand
    assert engine.is_loaded(model_id)


async def test_the_server_default_keep_alive_unloads_an_idle_model(models_dir, model_id):
    short = make_engine(models_dir, keep_alive=1.0)
    try:
        await run(short, chat(model_id, "Hi", max_tokens=2))
        await asyncio.sleep(0.1)  # the engine marks the model idle after the step that ended it
        memory, expires = short.residency(model_id)
        assert memory > 80 << 20 and expires == pytest.approx(time.time() + 0.9, abs=0.3)
        await asyncio.sleep(0.4)
        assert short.is_loaded(model_id)
        await asyncio.sleep(1.5)
        assert not short.is_loaded(model_id)
    finally:
        short.shutdown()


@pytest.fixture
def two_models(models_dir: Path, model_id: str, tmp_path: Path) -> Path:
    directory = tmp_path / "models"
    shutil.copytree(models_dir / model_id, directory / "first")
    shutil.copytree(models_dir / model_id, directory / "second")
    return directory


async def test_loading_past_the_budget_unloads_the_least_recently_used(two_models) -> None:
    one = make_engine(two_models)
    try:
        await one.load("first")
        memory = one.residency("first")[0]
    finally:
        one.shutdown()
    engine = make_engine(two_models, model_memory_bytes=int(memory * 1.5))  # room for one
    try:
        await run(engine, chat("first", "Hi", max_tokens=2))
        await run(engine, chat("second", "Hi", max_tokens=2))
        assert engine.loaded_ids() == ["second"]
    finally:
        engine.shutdown()


async def test_one_model_at_a_time_and_busy_models_stay(two_models) -> None:
    engine = make_engine(two_models, max_loaded_models=1)
    try:
        stream = engine.generate(chat("first", "Count to 1000.", max_tokens=300))
        await stream.__anext__()  # admitted: "first" is busy
        with pytest.raises(ResourceExhausted, match="busy"):
            await run(engine, chat("second", "Hi", max_tokens=2))
        with pytest.raises(FailedPrecondition, match="generating"):
            await engine.unload("first")
        await stream.aclose()
        await asyncio.sleep(0.3)  # the cancelled request leaves the batch
        await run(engine, chat("second", "Hi", max_tokens=2))
        assert engine.loaded_ids() == ["second"]
    finally:
        engine.shutdown()
