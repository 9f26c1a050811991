"""Speculative decoding by prompt lookup: drafts, and output identical to plain greedy decoding
on the real test model (alone, and when another request arrives halfway)."""

from __future__ import annotations

import asyncio

import mlx.core as mx
import pytest
from engine_helpers import chat, make_engine, run
from mlx_lm.generate import generate_step
from mlx_lm.models.cache import make_prompt_cache

from osaurus.engine.engine import Engine
from osaurus.engine.speculative import NgramIndex, PromptLookupDecoder
from osaurus.errors import InternalError

TEXT = (
    "The quick brown fox jumps over the lazy dog. The dog sleeps in the sun all day long, "
    "and the fox runs back into the forest before the farmer wakes up."
)
# A reply that copies its input: where prompt lookup drafts well.
COPY = f"Repeat this text exactly, word for word:\n\n{TEXT}"


def test_the_draft_is_what_followed_the_latest_match_of_the_last_tokens() -> None:
    #        0  1  2  3  4  5  6  7  8  9 10 11 12
    tokens = [1, 2, 3, 9, 9, 1, 2, 3, 7, 8, 1, 2, 3]
    assert NgramIndex(tokens).draft(2) == [7, 8]  # the match at 5 is later than the one at 0
    assert NgramIndex(tokens).draft(10) == [7, 8, 1, 2, 3]


def test_longer_ngrams_win_and_no_match_gives_no_draft() -> None:
    # The bigram (4, 5) last occurred at 6, but the trigram (3, 4, 5) only at 0.
    assert NgramIndex([3, 4, 5, 6, 0, 0, 4, 5, 1, 3, 4, 5]).draft(1) == [6]
    assert NgramIndex([1, 2, 3, 4]).draft(4) == []
    assert NgramIndex([5, 5]).draft(4) == []  # the tail's only occurrence is itself


def test_the_index_follows_tokens_as_they_come() -> None:
    index = NgramIndex([1, 2, 3])
    assert index.draft(4) == []
    index.extend([4, 1, 2])  # the tail (1, 2) occurred at 0, followed by 3, 4, 1, 2
    assert index.draft(4) == [3, 4, 1, 2]
    index.extend([5])
    assert index.draft(4) == []
    index.extend([1, 2, 5])  # (1, 2, 5) last at 4: followed by 1, 2, 5
    assert index.draft(8) == [1, 2, 5]


def _decode_both_ways(lm, max_tokens: int) -> tuple[list[int], list[int], int, PromptLookupDecoder]:
    """mlx-lm's greedy tokens for COPY, and the decoder's (with its passes and itself)."""
    rendered = lm.tokenizer.apply_chat_template(
        [{"role": "user", "content": COPY}], add_generation_prompt=True, tokenize=False
    )
    prompt = lm.tokenizer.encode(rendered)
    want = [int(t) for t, _ in generate_step(mx.array(prompt), lm.model, max_tokens=max_tokens)]

    cache = make_prompt_cache(lm.model)
    lm.model(mx.array([prompt[:-1]]), cache=cache)  # the prefill, as the batch does it
    decoder = PromptLookupDecoder(lm.model, cache, prompt[:-1], prompt[-1])
    got, passes = [], 0
    while len(got) < max_tokens:
        got += decoder.step()
        passes += 1
    decoder.settle()  # as the scheduler does before it hands the cache on
    return want, got[:max_tokens], passes, decoder


def _decode_without_drafts(lm, max_tokens: int) -> tuple[list[int], list[int], list[int]]:
    """mlx-lm's greedy tokens for a prompt, the decoder's with drafting off (every pass runs
    ahead of the last), and the cache's surplus over the decoder's tokens after each step."""
    prompt = lm.tokenizer.encode("Once upon a time, in a small village by the sea,")
    want = [int(t) for t, _ in generate_step(mx.array(prompt), lm.model, max_tokens=max_tokens)]

    cache = make_prompt_cache(lm.model)
    lm.model(mx.array([prompt[:-1]]), cache=cache)
    decoder = PromptLookupDecoder(lm.model, cache, prompt[:-1], prompt[-1])
    decoder._index.draft = lambda max_tokens: []  # type: ignore[method-assign]
    got, surplus = [], []
    for i in range(max_tokens):
        if i == max_tokens // 2:
            decoder.settle()  # taken back halfway (a newcomer): decoding goes on from there
        got += decoder.step(ahead=i + 1 < max_tokens)
        surplus.append(cache[0].offset - len(decoder.tokens))
    return want, got, surplus


async def test_the_decoder_gives_mlx_lm_greedy_output_in_fewer_passes(engine, model_id) -> None:
    await run(engine, chat(model_id, "Hi", max_tokens=1))  # loads the model
    lm = engine.loaded(model_id)
    want, got, passes, decoder = await engine.call(_decode_both_ways, lm, 48)

    assert got == want
    assert decoder.accepted > 0 and passes < 48  # drafts were taken, not only tried
    # The cache holds exactly the tokens the decoder says it holds.
    assert decoder.cache[0].offset == len(decoder.tokens)


async def test_passes_without_a_draft_run_one_ahead_and_give_the_same_tokens(
    engine, model_id
) -> None:
    await run(engine, chat(model_id, "Hi", max_tokens=1))  # loads the model
    want, got, surplus = await engine.call(_decode_without_drafts, engine.loaded(model_id), 12)
    assert got == want
    # Between steps the next pass is in flight (its token in the cache, not yet in tokens);
    # none after the first step (its pass runs alone, for a sooner first token) and none
    # after the last, which wanted no next token.
    assert surplus == [0] + [1] * 10 + [0]


@pytest.mark.parametrize("prompt", [COPY, "Name the capital of France."])
async def test_greedy_output_is_the_same_with_and_without_it(engine: Engine, model_id, prompt):
    plain = await run(engine, chat(model_id, prompt, max_tokens=60, speculative=False))
    fast = await run(engine, chat(model_id, prompt, max_tokens=60, speculative=True))
    assert fast.same_as == plain.same_as
    assert fast.finished.usage.completion_tokens == plain.finished.usage.completion_tokens


@pytest.mark.parametrize(
    "settings", [{}, {"temperature": 0.9, "seed": 7}], ids=["greedy", "seeded"]
)
async def test_a_request_arriving_halfway_sends_it_back_to_the_batch(
    models_dir, model_id, settings
):
    """Its output is what it says alone: a greedy one's speculation, or a seeded one's draws,
    go on in the batch where they stopped."""
    engine = make_engine(models_dir, speculative=True)
    try:
        alone = await run(engine, chat(model_id, COPY, max_tokens=60, **settings))
        other_alone = await run(engine, chat(model_id, "Tell me a story.", max_tokens=20))

        first = asyncio.create_task(run(engine, chat(model_id, COPY, max_tokens=60, **settings)))
        while not (await engine.call(lambda: _solo_tokens(engine, model_id))):
            await asyncio.sleep(0.01)  # until the first request decodes alone, speculating
        second = await run(engine, chat(model_id, "Tell me a story.", max_tokens=20))
        assert (await first).same_as == alone.same_as
        assert second.same_as == other_alone.same_as
    finally:
        engine.shutdown()


async def test_a_request_on_an_idle_model_skips_the_batch(models_dir, model_id):
    """It decodes alone from its first token (sooner: no batch is built for it), greedy or
    sampled. One with a penalty, or more than a prefill chunk of prompt to read, goes through
    the batch."""
    engine = make_engine(models_dir, speculative=True, prefill_step=4)
    try:
        await run(engine, chat(model_id, "Hi", max_tokens=1))  # loads the model
        short = await run(engine, chat(model_id, "Hi", max_tokens=8))  # all but 1 token cached

        def no_batch(*args, **kwargs):
            raise RuntimeError("went through the batch")

        engine._schedulers[model_id]._generator.insert = no_batch
        again = await run(engine, chat(model_id, "Hi", max_tokens=8))
        assert again.same_as == short.same_as
        sampled = await run(engine, chat(model_id, "Hi", max_tokens=8, temperature=0.7))
        assert sampled.finished.usage.completion_tokens > 0
        with pytest.raises(InternalError, match="went through the batch"):
            await run(engine, chat(model_id, "Hi", max_tokens=8, repetition_penalty=1.3))
        with pytest.raises(InternalError, match="went through the batch"):
            await run(engine, chat(model_id, "Name the capital of France.", max_tokens=8))
    finally:
        engine.shutdown()


async def test_a_failed_rejoin_fails_that_request_only(models_dir, model_id):
    engine = make_engine(models_dir, speculative=True)
    try:
        first = asyncio.create_task(run(engine, chat(model_id, COPY, max_tokens=60)))
        while not (await engine.call(lambda: _solo_tokens(engine, model_id))):
            await asyncio.sleep(0.01)
        generator = engine._schedulers[model_id]._generator
        insert = generator.insert

        def broken_once(*args, **kwargs):
            generator.insert = insert
            raise RuntimeError("simulated insert failure")

        generator.insert = broken_once
        second = await run(engine, chat(model_id, "Tell me a story.", max_tokens=8))
        assert second.finished.finish_reason == "length"
        with pytest.raises(InternalError, match="simulated insert failure"):
            await asyncio.wait_for(first, 60)  # not left hanging
        assert await engine.active_requests() == 0
    finally:
        engine.shutdown()


def _solo_tokens(engine: Engine, model_id: str) -> int:
    """Tokens decoded so far by the request that decodes alone (0 when none does)."""
    scheduler = engine._schedulers.get(model_id)  # none until the model is loaded
    solo = scheduler._solo if scheduler else None
    return solo[0].generated if solo else 0


async def test_a_seeded_request_left_alone_in_the_batch_says_what_it_says_alone(
    models_dir, model_id
):
    """It leaves the batch when its neighbour ends, dropping the token the batch drew ahead
    for it: the decoder draws that token again, so its output is the same."""
    engine = make_engine(models_dir)
    seeded = chat(model_id, COPY, max_tokens=40, temperature=0.9, seed=7)
    try:
        alone = await run(engine, seeded)
        scheduler = engine._schedulers[model_id]
        went_solo = []
        go_solo = scheduler._go_solo
        scheduler._go_solo = lambda uid: (went_solo.append(uid), go_solo(uid))
        together = await asyncio.gather(
            run(engine, seeded), run(engine, chat(model_id, "Hi", max_tokens=4))
        )
        assert went_solo  # it did leave the batch halfway
        assert together[0].same_as == alone.same_as
    finally:
        engine.shutdown()
