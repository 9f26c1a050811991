"""Paired comparison of servers that are all up at once and take turns.

This machine's speed drifts by ±15% over minutes (and a shared VM's by up to 2x for a while),
more than many effects measured, so arms run one after the other are not comparable. Here each
round runs one batch of `c` concurrent requests on every arm, in an order that rotates; the
others sit idle meanwhile. The figure to read is the paired ratio: each arm's batch against the
base arm's batch of the same round, with how many rounds it won.
"""

from __future__ import annotations

import statistics

from bench import workloads


async def batch(
    client, level: int, max_tokens: int, tag: str, ignore_eos: bool
) -> dict[str, float]:
    """One batch of `level` concurrent requests; raises if any failed (a failure is no figure)."""
    results, wall = await workloads.concurrent(
        client, level, level, max_tokens, ignore_eos=ignore_eos, tag=tag
    )
    ok = [r for r in results if r.ok]
    if len(ok) < len(results):
        errors = {r.error for r in results if not r.ok}
        raise RuntimeError(f"{client.name}: {len(results) - len(ok)} requests failed: {errors}")
    return {
        "aggregate_tps": sum(r.completion_tokens for r in ok) / wall,
        "stream_tps": statistics.median(r.decode_tps for r in ok),
        "ttft_ms": statistics.median(r.ttft for r in ok) * 1000,
    }


async def compare(
    clients: dict[str, object],
    base: str,
    levels: list[int],
    rounds: int,
    max_tokens: int,
    ignore_eos: bool = False,
) -> dict[str, dict[str, dict]]:
    """Per level, per arm: its p50 figures and its paired ratios against `base`."""
    names = list(clients)
    out: dict[str, dict[str, dict]] = {}
    for client in clients.values():
        await workloads.warm_up(client)
    for level in levels:
        runs: dict[str, list[dict[str, float]]] = {name: [] for name in names}
        for i in range(rounds):
            order = names[i % len(names) :] + names[: i % len(names)]
            for name in order:
                # The round in the prompt: no prompt cache serves a round from an earlier one.
                runs[name].append(
                    await batch(clients[name], level, max_tokens, f"round {i}", ignore_eos)
                )
        out[str(level)] = {name: _figures(runs[name], runs[base]) for name in names}
        for name, row in out[str(level)].items():
            print(
                f"  c={level:<2} {name:38} {row['aggregate_tps_p50']:6.1f} tok/s "
                f"TTFT {row['ttft_ms_p50']:5.0f} ms  paired x{row['paired_tps_ratio_p50']:.3f} "
                f"({row['rounds_faster']}/{rounds} faster)",
                flush=True,
            )
    return out


def _figures(arm: list[dict[str, float]], base: list[dict[str, float]]) -> dict:
    pairs = list(zip(arm, base, strict=True))
    ratios = [a["aggregate_tps"] / b["aggregate_tps"] for a, b in pairs]
    return {
        "aggregate_tps_p50": statistics.median(r["aggregate_tps"] for r in arm),
        "stream_tps_p50": statistics.median(r["stream_tps"] for r in arm),
        "ttft_ms_p50": statistics.median(r["ttft_ms"] for r in arm),
        "paired_tps_ratio_p50": statistics.median(ratios),
        "paired_stream_tps_ratio_p50": statistics.median(
            a["stream_tps"] / b["stream_tps"] for a, b in pairs
        ),
        "paired_ttft_ratio_p50": statistics.median(a["ttft_ms"] / b["ttft_ms"] for a, b in pairs),
        "rounds_faster": sum(x > 1 for x in ratios),
        "paired_ttft_added_ms_p50": statistics.median(
            a["ttft_ms"] - b["ttft_ms"] for a, b in pairs
        ),
    }
