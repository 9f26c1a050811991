"""Attention alone: osaurus' native primitive beside MLX's mx.fast.scaled_dot_product_attention.

On the CPU MLX's fused attention expands into its fallback (a dozen ops); the server runs
osaurus' one-op primitive (native/attention.h). Shapes are the 135M test model's heads (9 query
heads over 3 key/value heads of 64), with the KV cache in float16 (the server's default) and in
float32 (`--kv-cache-dtype float32`); MLX computes on the same float16 cache:

- decode: one new token per sequence against `keys` cached ones, 1 and 8 sequences, all 30
  layers' attention in one graph, each layer with its own keys and values (30 layers' cache of
  8 x 1,000 tokens is ~180 MB, beyond the cache, as in the server);
- prompt: a causal prompt of 1,024 tokens, one layer.

Each figure is the median over several evaluations. Writes attention.json and attention.md to
bench/results (or OUT).

    python -m bench.attention
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import mlx.core as mx

from bench.report import save_result
from osaurus.engine.native import kernels, status

HEADS, KV_HEADS, DIMS, LAYERS = 9, 3, 64, 30
SCALE = DIMS**-0.5


def median_ms(run: Callable[[], list[mx.array]], repeats: int = 9) -> float:
    mx.eval(run())  # warm-up
    samples = []
    for _ in range(repeats):
        outs = run()  # build the graph outside the timing
        start = time.perf_counter()
        mx.eval(outs)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1e3


def compare(batch: int, queries: int, keys: int, layers: int) -> dict:
    """osaurus (float16 and float32 cache) and MLX on the same inputs, `layers` independent
    attentions per evaluation."""
    native = kernels()
    shapes = [(batch, HEADS, queries, DIMS), (batch, KV_HEADS, keys, DIMS)]
    inputs = [
        (
            mx.random.normal(shapes[0]),
            mx.random.normal(shapes[1]).astype(mx.float16),
            mx.random.normal(shapes[1]).astype(mx.float16),
        )
        for _ in range(layers)
    ]
    as_float32 = [(q, k.astype(mx.float32), v.astype(mx.float32)) for q, k, v in inputs]
    mx.eval(inputs, as_float32)
    causal = queries > 1

    def ours(cache: list[tuple[mx.array, mx.array, mx.array]]) -> float:
        return median_ms(
            lambda: [native.attention(q, k, v, scale=SCALE, causal=causal) for q, k, v in cache]
        )

    theirs = median_ms(
        lambda: [
            mx.fast.scaled_dot_product_attention(
                q, k, v, scale=SCALE, mask="causal" if causal else None
            )
            for q, k, v in inputs
        ]
    )
    return {
        "case": f"{'prompt' if causal else 'decode'}: {batch} x {queries} queries, {keys} keys, "
        f"{layers} layer{'s' if layers > 1 else ''}",
        "osaurus_ms": ours(inputs),
        "osaurus_float32_cache_ms": ours(as_float32),
        "mlx_ms": theirs,
    }


def main() -> None:
    with mx.stream(mx.cpu):
        rows = [compare(batch, 1, keys, LAYERS) for batch in (1, 8) for keys in (200, 1000)] + [
            compare(1, 1024, 1024, 1)
        ]
    result = {"kernel": status().describe(), "rows": rows}
    save_result("attention", result, markdown(result))


def markdown(result: dict) -> str:
    lines = [
        f"Attention alone ({result['kernel']}): the 135M test model's heads ({HEADS} query heads "
        f"over {KV_HEADS} key/value heads of {DIMS}); float16 KV cache unless said; median ms per "
        "evaluation.",
        "",
        "| case | osaurus (ms) | osaurus, float32 cache (ms) | MLX's fused attention (ms) "
        "| osaurus speed-up over MLX |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in result["rows"]:
        lines.append(
            f"| {r['case']} | {r['osaurus_ms']:.2f} | {r['osaurus_float32_cache_ms']:.2f} "
            f"| {r['mlx_ms']:.2f} | {r['mlx_ms'] / r['osaurus_ms']:.2f}x |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
