"""Continuous batching on the real model: a request's output does not depend on its neighbours."""

from __future__ import annotations

import asyncio

import pytest
from engine_helpers import chat, make_engine, run

from osaurus.engine.engine import Engine
from osaurus.errors import InternalError, ResourceExhausted

LONG = "Write the numbers from 1 to 1000, one per line."


def eight_requests(model: str):
    """Different prompts, sampling settings and stop strings; all deterministic."""
    return [
        chat(model, "Name the capital of France.", max_tokens=24, temperature=0.0),
        chat(model, "Name three colours.", max_tokens=24, stop=[","]),
        chat(model, "Write a haiku about the sea.", max_tokens=24, repetition_penalty=1.3),
        chat(model, "Count from 1 to 20.", max_tokens=24, stop=["7"]),
        chat(model, "Tell me a joke.", max_tokens=24, temperature=0.9, seed=7),
        chat(model, "What is 2 + 2?", max_tokens=24, top_k=5),
        chat(model, "Describe a cat in one sentence.", max_tokens=12),
        chat(model, LONG, max_tokens=24, temperature=0.7, top_p=0.9, seed=123),
    ]


async def test_concurrent_streams_get_what_they_get_alone(engine: Engine, model_id: str):
    requests = eight_requests(model_id)
    alone = [await run(engine, r) for r in requests]
    together = await asyncio.gather(*(run(engine, r) for r in requests))

    for request, solo, batched in zip(requests, alone, together, strict=True):
        assert batched.same_as == solo.same_as, request
    assert any(o.finished.finish_reason == "stop" for o in alone)  # stop strings were exercised
    # They really ran together: most had their first token before any of them finished.
    first_finish = min(o.finished_at for o in together)
    assert sum(o.first_token_at < first_finish for o in together) >= 6


async def test_a_cancelled_stream_does_not_disturb_the_others(engine: Engine, model_id: str):
    others = [
        chat(model_id, "Name three colours.", max_tokens=20),
        chat(model_id, "What is 2 + 2?", max_tokens=20),
    ]
    alone = [await run(engine, r) for r in others]

    async def cancelled_after_a_few_chunks() -> None:
        stream = engine.generate(chat(model_id, LONG, max_tokens=500))
        seen = 0
        async for _ in stream:
            seen += 1
            if seen == 4:
                break
        await stream.aclose()

    results = await asyncio.gather(
        cancelled_after_a_few_chunks(), *(run(engine, r) for r in others)
    )
    for solo, batched in zip(alone, results[1:], strict=True):
        assert batched.same_as == solo.same_as
    # The cancelled one left the batch (it would have run for 500 tokens).
    assert await engine.active_requests() == 0


async def test_past_the_queue_a_request_is_refused_at_once(models_dir, model_id: str):
    small = make_engine(models_dir, max_batch_size=1, max_queue=1)
    try:
        streams = [small.generate(chat(model_id, LONG, max_tokens=400)) for _ in range(2)]
        for stream in streams:  # admitted: one decoding, one waiting
            await asyncio.wait_for(stream.__anext__(), timeout=120)
        with pytest.raises(ResourceExhausted, match="busy"):
            await asyncio.wait_for(small.generate(chat(model_id, "Hi")).__anext__(), timeout=1)
        for stream in streams:
            await stream.aclose()
        # Room again once they are gone.
        assert (await run(small, chat(model_id, "Hi", max_tokens=2))).finished is not None
    finally:
        small.shutdown()


async def test_a_failing_step_fails_its_batch_and_the_engine_goes_on(models_dir, model_id: str):
    engine = make_engine(models_dir)
    penalised = {"repetition_penalty": 1.3}  # it decodes in the batch, never alone
    try:
        await run(engine, chat(model_id, "Hi", max_tokens=2))  # loads the model and its batch

        def broken_step():
            raise RuntimeError("simulated MLX failure")

        engine._schedulers[model_id]._generator.next = broken_step
        with pytest.raises(InternalError, match="simulated MLX failure"):
            await run(engine, chat(model_id, "Hi", max_tokens=2, **penalised))
        assert (await run(engine, chat(model_id, "Hi", max_tokens=2, **penalised))).finished
        assert await engine.active_requests() == 0
    finally:
        engine.shutdown()


async def test_ignore_eos_generates_past_the_end_of_turn(engine: Engine, model_id: str):
    question = "Name the capital of France."
    normal = await run(engine, chat(model_id, question, max_tokens=40))
    assert normal.finished.finish_reason == "stop" and len(normal.token_ids) < 40
    # Beside a normal request in the same batch: ignore_eos is per sequence.
    longer, again = await asyncio.gather(
        run(engine, chat(model_id, question, max_tokens=40, ignore_eos=True)),
        run(engine, chat(model_id, question, max_tokens=40)),
    )
    assert longer.finished.finish_reason == "length" and len(longer.token_ids) == 40
    assert longer.text.startswith(normal.text.rstrip())
    assert again.same_as == normal.same_as
