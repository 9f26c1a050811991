"""The bench's modes, each a list of timed requests against one client."""

from __future__ import annotations

import asyncio
import time

from bench.clients import RequestResult
from bench.prompts import CONVERSATION, COPY_PROMPTS, PROMPTS, chat


async def concurrent(
    client,
    concurrency: int,
    requests: int,
    max_tokens: int,
    ignore_eos: bool = False,
    tag: str = "",
) -> tuple[list[RequestResult], float]:
    """`requests` prompts with at most `concurrency` in flight; returns results and wall time.
    `tag` goes into every prompt (as the client and mode do), so that batches repeated with
    other tags are not served from a prompt cache."""
    gate = asyncio.Semaphore(concurrency)
    mode = f"concurrency-{concurrency}"
    label = f"{mode}, {tag}" if tag else mode

    async def one(i: int) -> RequestResult:
        async with gate:
            # Tagged: a server's prompt cache must not serve one mode (or client) from another.
            # A prompt sent again (more requests than prompts) is tagged with its wave too.
            again = f", {i // len(PROMPTS)}" if i >= len(PROMPTS) else ""
            prompt = f"({client.name}, {label}{again}) {PROMPTS[i % len(PROMPTS)]}"
            return await client.chat(chat(prompt), max_tokens, mode, i, ignore_eos=ignore_eos)

    start = time.perf_counter()
    results = await asyncio.gather(*(one(i) for i in range(requests)))
    return list(results), time.perf_counter() - start


def long_prompt(tag: str, words: int = 760) -> str:
    """A prompt of about 1,000 tokens (the test model's tokenizer), unique to `tag` from its
    first token so that no prompt cache serves it."""
    text = " ".join(PROMPTS)
    body = (text + " ") * (words // len(text.split()) + 1)
    return f"[{tag}] Summarize these questions in one line: " + " ".join(body.split()[:words])


async def prefill(client, requests: int) -> list[RequestResult]:
    """Prompt processing: ~1,000-token prompts, a few tokens out; prefill speed is the prompt's
    tokens over the time to the first token."""
    results = []
    for i in range(requests):
        prompt = long_prompt(f"{client.name} prefill {i}")
        results.append(await client.chat(chat(prompt), 8, "prefill-1000", i, ignore_eos=True))
    return results


async def multi_turn(client, max_tokens: int, session: str = "") -> list[RequestResult]:
    """A growing conversation: each turn resends the history plus one new question."""
    messages: list[dict] = []
    results = []
    for turn, question in enumerate(CONVERSATION, start=1):
        messages.append({"role": "user", "content": question})
        result = await client.chat(messages, max_tokens, "multi-turn", turn, session=session)
        results.append(result)
        messages.append({"role": "assistant", "content": result.text})
    return results


async def prompt_lookup(client, max_tokens: int) -> dict[str, list[RequestResult]]:
    """One stream at a time, each prompt with speculative decoding off and on (alternating
    which goes first): copy-heavy prompts and ordinary ones. Greedy, so both give the same
    text; only the pace differs."""
    results: dict[str, list[RequestResult]] = {}
    sets = {"copy": COPY_PROMPTS, "chat": PROMPTS[: len(COPY_PROMPTS)]}
    for kind, prompts in sets.items():
        for i, prompt in enumerate(prompts):
            order = (False, True) if i % 2 == 0 else (True, False)
            for on in order:
                mode = f"lookup-{kind}-{'on' if on else 'off'}"
                tagged = f"({client.name}, {mode}) {prompt}"  # no prompt cache across modes
                result = await client.chat(chat(tagged), max_tokens, mode, i, speculative=on)
                results.setdefault(mode, []).append(result)
    return results


async def warm_up(client) -> None:
    """Load the model before timing anything (the cold start is measured on its own)."""
    await client.chat(chat("Hello!"), 4, "warm-up", 0)


async def cold_start(client, started_at: float, max_tokens: int) -> tuple[RequestResult, float]:
    """The first request after spawn; returns it and seconds from spawn to its first token."""
    request_start = time.perf_counter()
    result = await client.chat(chat(PROMPTS[0]), max_tokens, "cold-start", 0)
    return result, request_start + result.ttft - started_at
