"""One request's decode loop: mlx-lm samples tokens; this turns them into events.

mlx-lm's `generate_step` does prefill, sampling and the KV cache. What is ours is what a server
needs around it and `stream_generate` does not give: stopping at any end-of-turn token, stop
strings that never leak, a cancel check between decode steps, and timings and usage per request.
Runs on the engine thread.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import mlx.core as mx
from mlx_lm.generate import generate_step
from mlx_lm.sample_utils import make_logits_processors, make_sampler

from osaurus.chat.stopping import StopStringFilter
from osaurus.engine.loaded_model import LoadedModel
from osaurus.engine.request import (
    Finished,
    GenerationEvent,
    SamplingParams,
    TextChunk,
    Timings,
    Usage,
)


def make_sampling(params: SamplingParams):
    sampler = make_sampler(
        temp=params.temperature or 0.0,
        top_p=params.top_p or 0.0,
        min_p=params.min_p or 0.0,
        top_k=params.top_k or 0,
    )
    processors = (
        make_logits_processors(repetition_penalty=params.repetition_penalty)
        if params.repetition_penalty and params.repetition_penalty != 1.0
        else None
    )
    return sampler, processors


def generate_events(
    lm: LoadedModel,
    prompt: list[int],
    params: SamplingParams,
    max_tokens: int,
    stops: list[str],
    cancelled: threading.Event,
) -> Iterator[GenerationEvent]:
    """Yield TextChunks as text becomes safe to send, then exactly one Finished."""
    sampler, processors = make_sampling(params)
    if params.seed is not None:
        mx.random.seed(params.seed)
    detokenizer = lm.tokenizer.detokenizer
    detokenizer.reset()
    stop_filter = StopStringFilter(stops)
    pending_ids: list[int] = []  # tokens whose text is held back (or not yet decoded)
    generated = 0
    finish_reason = "length"
    start = time.perf_counter()
    first_token_at: float | None = None

    steps = generate_step(
        mx.array(prompt),
        lm.model,
        max_tokens=max_tokens,
        sampler=sampler,
        logits_processors=processors,
    )
    for token, _ in steps:
        if first_token_at is None:
            first_token_at = time.perf_counter()
        if cancelled.is_set():
            finish_reason = "cancelled"
            break
        if token in lm.stop_token_ids:
            finish_reason = "stop"
            break
        generated += 1
        pending_ids.append(token)
        detokenizer.add_token(token)
        text = stop_filter.feed(detokenizer.last_segment)
        if text:
            yield TextChunk(text=text, token_ids=pending_ids)
            pending_ids = []
        if stop_filter.stopped:
            finish_reason = "stop"
            break
    steps.close()  # frees the generator's arrays now, not at garbage collection

    if finish_reason == "length":
        detokenizer.finalize()
        tail = stop_filter.feed(detokenizer.last_segment) + stop_filter.flush()
        if tail or pending_ids:
            yield TextChunk(text=tail, token_ids=pending_ids)

    end = time.perf_counter()
    first = first_token_at or end
    yield Finished(
        finish_reason=finish_reason,
        usage=Usage(prompt_tokens=len(prompt), completion_tokens=generated),
        timings=Timings(
            time_to_first_token=first - start,
            prompt_tokens_per_second=len(prompt) / max(first - start, 1e-9),
            generation_tokens_per_second=(generated - 1) / (end - first) if generated > 1 else 0.0,
            total_seconds=end - start,
        ),
        model=lm.info.id,
    )
