"""One request's decode loop: mlx-lm samples tokens; this turns them into events.

mlx-lm's `generate_step` does prefill, sampling and the KV cache. What is ours is what a server
needs around it and `stream_generate` does not give: stopping at any end-of-turn token, stop
strings that never leak, a cancel check between decode steps, and timings and usage per request.
Runs on the engine thread.
"""

from __future__ import annotations

import itertools
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


class _Cancelled(Exception):
    """Raised from mlx-lm's prefill progress callback to stop a cancelled request mid-prompt."""


def prefill_step_size() -> int:
    """Tokens per prefill chunk; cancellation is checked between chunks.

    GPUs want big chunks; on the CPU the matmuls are efficient from ~128 rows, and a small chunk
    keeps a cancelled long prompt from holding the engine (a 4-bit model prefills ~15 tokens/s
    on our 2-core test machine).
    """
    return 2048 if mx.default_device() == mx.gpu else 256


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

    def stop_prefill_if_cancelled(processed: int, total: int) -> None:
        if cancelled.is_set():
            raise _Cancelled

    steps = generate_step(
        mx.array(prompt),
        lm.model,
        max_tokens=max_tokens,
        sampler=sampler,
        logits_processors=processors,
        prefill_step_size=prefill_step_size(),
        prompt_progress_callback=stop_prefill_if_cancelled,
    )
    try:
        first_token, _ = next(steps)
    except _Cancelled:
        steps.close()
        yield _finished(lm, "cancelled", len(prompt), 0, start, None)
        return
    for token, _ in itertools.chain([(first_token, None)], steps):
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

    yield _finished(lm, finish_reason, len(prompt), generated, start, first_token_at)


def _finished(
    lm: LoadedModel,
    reason: str,
    prompt_tokens: int,
    generated: int,
    start: float,
    first_token_at: float | None,
) -> Finished:
    end = time.perf_counter()
    first = first_token_at or end
    return Finished(
        finish_reason=reason,
        usage=Usage(prompt_tokens=prompt_tokens, completion_tokens=generated),
        timings=Timings(
            time_to_first_token=first - start,
            prompt_tokens_per_second=prompt_tokens / max(first - start, 1e-9),
            generation_tokens_per_second=(generated - 1) / (end - first) if generated > 1 else 0.0,
            total_seconds=end - start,
        ),
        model=lm.info.id,
    )
