"""`python -m bench.api_features` (part of `make bench`): what two API features cost or save,
on one osaurus server with the test model, in one run.

- logprobs: decode tokens/s of the same greedy requests with and without `top_logprobs` 5
  (the engine reads the distribution only for requests that ask; prompt-lookup decoding, which
  such requests never take, is off for both).
- previous_response_id: time to the first text of the 5th turn of a Responses chain, continued
  on the stored conversation and its server session, against the same conversation sent whole
  to a fresh chain (store=False: nothing reused).

Writes bench/results/api_features.{json,md}. Environment: REPEATS (5), OUT (bench/results).
"""

from __future__ import annotations

import json
import os
import statistics
import time
from pathlib import Path

import openai

from bench.servers import ROOT, WORK, prepare_models
from osaurus.child_server import start
from osaurus.models.default_model import MODEL_ID

PROMPT = [{"role": "user", "content": "Write the numbers from 1 to 1000, one per line."}]
TURNS = [
    "Hi! My name is Ada and I collect old maps of the Baltic coast.",
    "Which maps would be the rarest, do you think?",
    "And how should I store them so they last?",
    "What about framing them for a wall?",
    "Thanks. What was my name again?",
]


def decode_rate(client: openai.OpenAI, logprobs: bool, repeats: int) -> float:
    """Median decode tokens/s (after the first token) of 64-token greedy streams."""
    rates = []
    for _ in range(repeats + 1):
        # Prompt-lookup decoding off for both: requests with logprobs never take it.
        extra: dict = {"extra_body": {"speculative": False}}
        if logprobs:
            extra.update(logprobs=True, top_logprobs=5)
        first, count = None, 0
        for chunk in client.chat.completions.create(
            model=MODEL_ID, messages=PROMPT, max_tokens=64, temperature=0, stream=True, **extra
        ):
            if chunk.choices and chunk.choices[0].delta.content:
                first = first or time.perf_counter()
                count += 1
        if first is not None and count > 1:
            rates.append((count - 1) / (time.perf_counter() - first))
    return statistics.median(rates[1:])  # the first run warms up


def first_text_seconds(client: openai.OpenAI, **request) -> float:
    start = time.perf_counter()
    for event in client.responses.create(model=MODEL_ID, stream=True, temperature=0, **request):
        if event.type == "response.output_text.delta":
            return time.perf_counter() - start
    raise RuntimeError("no text in the response")


def chain_ttft(client: openai.OpenAI) -> tuple[float, float, int]:
    """(chained 5th-turn TTFT, cold 5th-turn TTFT, tokens the chained turn reused)."""
    previous, history = None, []
    for turn in TURNS[:-1]:
        r = client.responses.create(
            model=MODEL_ID,
            input=turn,
            previous_response_id=previous,
            temperature=0,
            max_output_tokens=48,
        )
        previous = r.id
        history += [
            {"role": "user", "content": turn},
            {"role": "assistant", "content": r.output_text},
        ]
    chained = first_text_seconds(
        client, input=TURNS[-1], previous_response_id=previous, max_output_tokens=8
    )
    cold = first_text_seconds(
        client,
        input=[*history, {"role": "user", "content": TURNS[-1]}],
        store=False,
        max_output_tokens=8,
    )
    reused = client.responses.create(
        model=MODEL_ID, input=TURNS[-1], previous_response_id=previous, max_output_tokens=1
    ).usage.input_tokens_details.cached_tokens
    return chained, cold, reused


def main() -> None:
    repeats = int(os.environ.get("REPEATS", "5"))
    models, _, _ = prepare_models()
    # No prefix cache: the cold turn must be cold, and only the chain's session reuses.
    server = start(
        models, WORK / "osaurus-api-features.log", "--no-default-model", "--no-prefix-cache"
    )
    client = openai.OpenAI(base_url=f"{server.http_url}/v1", api_key="any", max_retries=0)
    try:
        plain = decode_rate(client, False, repeats)
        with_logprobs = decode_rate(client, True, repeats)
        chained, cold, reused = chain_ttft(client)
    finally:
        server.stop()
    data = {
        "decode_tokens_per_second": {"plain": plain, "top_logprobs_5": with_logprobs},
        "logprobs_cost": 1 - with_logprobs / plain,
        "fifth_turn_ttft_seconds": {"chained": chained, "cold": cold},
        "fifth_turn_reused_tokens": reused,
    }
    out = Path(os.environ.get("OUT", ROOT / "bench" / "results"))
    out.mkdir(parents=True, exist_ok=True)
    (out / "api_features.json").write_text(json.dumps(data, indent=2) + "\n")
    lines = [
        f"Test model, one osaurus server, one run (median of {repeats} streams of 64 tokens).",
        "",
        "| measure | value |",
        "| --- | ---: |",
        f"| decode tokens/s, no logprobs | {plain:.1f} |",
        f"| decode tokens/s, top_logprobs 5 | {with_logprobs:.1f} |",
        f"| logprobs cost | {100 * data['logprobs_cost']:.0f}% |",
        f"| 5th Responses turn, TTFT chained (previous_response_id) | {chained * 1000:.0f} ms |",
        f"| 5th turn, TTFT with the history sent cold | {cold * 1000:.0f} ms |",
        f"| tokens the chained turn reused from the session | {reused} |",
    ]
    (out / "api_features.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
