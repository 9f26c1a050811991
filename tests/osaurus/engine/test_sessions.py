"""Session and prefix KV reuse on the real model: same output as without reuse, less prefill."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import mlx.core as mx
from engine_helpers import chat, run

from osaurus.engine.engine import Engine

QUESTION = "Name the capital of France."
FOLLOW_UP = "And of Italy?"


async def test_a_session_reuses_its_cache_and_the_output_is_unchanged(
    engine: Engine, engine_without_reuse: Engine, model_id: str
):
    first = await run(engine, chat(model_id, QUESTION, max_tokens=16, session_id="reuse"))
    assert first.started.cached_tokens == 0
    session = await engine.session("reuse")
    # The cache holds the prompt and the reply (with its end-of-turn token).
    assert len(session.tokens) > first.started.prompt_tokens
    assert session.nbytes > 0 and not session.in_use

    turn2 = chat(model_id, QUESTION, first.text, FOLLOW_UP, max_tokens=16, session_id="reuse")
    second = await run(engine, turn2)
    cold = await run(engine_without_reuse, replace(turn2, session_id=""))

    assert second.same_as == cold.same_as
    assert cold.finished.usage.cached_tokens == 0
    # Everything up to the new user turn came from the cache.
    assert second.finished.usage.cached_tokens >= first.started.prompt_tokens
    assert second.finished.usage.cached_tokens == second.started.cached_tokens


async def test_a_diverging_prompt_trims_the_cache(
    engine: Engine, engine_without_reuse: Engine, model_id: str
):
    first = await run(engine, chat(model_id, QUESTION, max_tokens=12, session_id="diverge"))
    edited = chat(model_id, "What is the capital of Spain?", max_tokens=12, session_id="diverge")
    second = await run(engine, edited)
    cold = await run(engine_without_reuse, replace(edited, session_id=""))

    assert second.same_as == cold.same_as
    # Only the template's header and the words before "France" / "Spain" were reused.
    assert 0 < second.started.cached_tokens < first.started.prompt_tokens - 2


async def test_a_session_in_use_is_not_shared(
    engine: Engine, engine_without_reuse: Engine, model_id: str
):
    request = chat(model_id, "Name three colours.", max_tokens=24, session_id="busy")
    alone = await run(engine_without_reuse, replace(request, session_id=""))
    holder, other = await asyncio.gather(run(engine, request), run(engine, request))

    assert holder.same_as == alone.same_as
    assert other.same_as == alone.same_as
    # Whichever was admitted second ran without the (held) session cache.
    assert sorted([holder.started.cached_tokens, other.started.cached_tokens])[0] == 0
    session = await engine.session("busy")
    assert not session.in_use and len(session.tokens) > 0


async def test_a_repeated_prompt_is_served_from_the_prefix_cache(engine: Engine, model_id: str):
    request = chat(model_id, "Say hello in French.", max_tokens=10)
    first = await run(engine, request)
    again = await run(engine, request)

    assert again.same_as == first.same_as
    assert again.started.cached_tokens == first.started.prompt_tokens - 1


async def test_over_the_budget_the_oldest_session_is_evicted(engine: Engine, model_id: str):
    await run(engine, chat(model_id, QUESTION, max_tokens=8, session_id="old"))
    one_session = (await engine.session("old")).nbytes
    budget = engine.kv_store.budget_bytes
    engine.kv_store.budget_bytes = int(one_session * 1.5)  # room for one session, not two
    try:
        await run(engine, chat(model_id, FOLLOW_UP, max_tokens=8, session_id="new"))
        ids = {s.session_id for s in await engine.sessions()}
        assert "new" in ids and "old" not in ids
        assert await engine.kv_cache_bytes() <= engine.kv_store.budget_bytes
    finally:
        engine.kv_store.budget_bytes = budget


async def test_kept_caches_hold_float16_keys_and_values(engine: Engine, model_id: str):
    # The server's default KV cache on the native layers: half the bytes of float32 per token.
    await run(engine, chat(model_id, QUESTION, max_tokens=8, session_id="half"))
    loaded = engine.loaded(model_id)
    assert loaded is not None and loaded.kv_cache_dtype == "float16"
    session = await engine.session("half")
    assert all(c.keys.dtype == c.values.dtype == mx.float16 for c in session.cache)
    args = loaded.model.args
    per_token = args.num_hidden_layers * 2 * args.num_key_value_heads * args.head_dim * 2
    assert session.nbytes == len(session.tokens) * per_token
