"""The quantized-matmul kernel alone: osaurus' native kernel beside MLX's and the float32 BLAS.

One 4-bit group-32 matrix of a 7-8B model's MLP (14336 x 4096, float16 scales and biases,
~37 MB), multiplied by 1 to 128 rows of x. A model's weights are read from memory, not from
the cache, so each call takes the next of several copies of the matrix that together are
twice the last-level cache (this machine's L3 holds 300 MB: one copy would stay in it);
"in cache" repeats one copy, to show what the kernel computes when memory is not the limit.
Each figure is the median of several calls; the roofline is the machine's read bandwidth,
measured here in the same run. Writes kernel.json and kernel.md to bench/results (or OUT).

"osaurus" is what the server runs: the weights repacked into the kernel's r16 layout at load
(native.repack, kernels_r16.h). The other native columns take MLX's own layout, as the kernel
does for a matrix it cannot repack.

    python -m bench.kernel
"""

from __future__ import annotations

from osaurus.engine.blas import preload_blas

preload_blas()  # MLX's float32 path runs on OpenBLAS, as in the server

import itertools  # noqa: E402
import math  # noqa: E402
import os  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable, Sequence  # noqa: E402
from concurrent.futures import ThreadPoolExecutor  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import mlx.core as mx  # noqa: E402
import numpy as np  # noqa: E402

from bench.report import save_result  # noqa: E402
from osaurus.engine.native import kernels, status  # noqa: E402

N, K, BITS, GROUP = 14336, 4096, 4, 32
ROWS = (1, 2, 4, 8, 16, 32, 64, 128)
MLX_ROWS = (1, 8)  # MLX's own kernel is slow: two points are enough


def read_bandwidth(gib: float = 2.0, repeats: int = 5) -> float:
    """Bytes per second that all cores read from memory: each takes the max of its slice of
    an array much larger than the cache (int64 max: of numpy's reductions measured here, the
    one that keeps up with memory; a float64 sum computes at half this speed)."""
    data = np.ones(int(gib * 2**30) // 8, dtype=np.int64)
    threads = os.cpu_count() or 1
    slices = np.array_split(data, threads)
    best = 0.0
    with ThreadPoolExecutor(threads) as pool:
        for _ in range(repeats):
            start = time.perf_counter()
            list(pool.map(np.max, slices))  # numpy releases the GIL while it reduces
            best = max(best, data.nbytes / (time.perf_counter() - start))
    return best


def last_level_cache_bytes() -> int:
    """The largest CPU cache Linux reports (64 MiB where it reports none)."""
    sizes = []
    for entry in Path("/sys/devices/system/cpu/cpu0/cache").glob("index*/size"):
        text = entry.read_text().strip()
        scale = {"K": 2**10, "M": 2**20, "G": 2**30}.get(text[-1:], 1)
        sizes.append(int(text.rstrip("KMG")) * scale)
    return max(sizes, default=64 * 2**20)


def timed(fn: Callable[[Any], mx.array], weights: Sequence[Any], calls: int) -> float:
    """Median seconds of fn(w), each call on the next of `weights` (round robin)."""
    mx.eval(fn(weights[-1]))  # warm up
    samples = []
    for w in itertools.islice(itertools.cycle(weights), calls):
        start = time.perf_counter()
        mx.eval(fn(w))
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def quantized_copies(count: int) -> list[tuple[mx.array, mx.array, mx.array]]:
    """`count` different random matrices, quantized as MLX stores them (float16 scales)."""
    copies = []
    for i in range(count):
        w = mx.random.normal((N, K), key=mx.random.key(i)) * 0.02
        q, scales, biases = mx.quantize(w, group_size=GROUP, bits=BITS)
        copy = (q, scales.astype(mx.float16), biases.astype(mx.float16))
        mx.eval(copy)
        copies.append(copy)
    return copies


def main() -> None:
    native = kernels()
    if native is None:
        raise SystemExit(f"the native kernel is not available: {status().detail}")
    cache = last_level_cache_bytes()
    weight_bytes = N * K * BITS // 8 + 2 * (N * K // GROUP) * 2
    count = math.ceil(2 * cache / weight_bytes) + 1
    mlx_layout = quantized_copies(count)
    r16 = []  # as the server holds them: repacked at load
    for q, scales, biases in mlx_layout:
        r16.append(native.repack(q, scales, biases, GROUP, BITS))
        mx.eval(r16[-1])
    # float32 copies are 6.4x larger: fewer make twice the cache
    f32 = [
        mx.dequantize(*w, GROUP, BITS).astype(mx.float32)
        for w in mlx_layout[: math.ceil(2 * cache / (N * K * 4)) + 1]
    ]
    mx.eval(f32)
    bandwidth = read_bandwidth()
    roofline = weight_bytes / bandwidth
    print(f"weights {weight_bytes / 1e6:.1f} MB x {count} copies (cache {cache / 2**20:.0f} MiB); "
          f"read bandwidth {bandwidth / 1e9:.1f} GB/s; roofline {roofline * 1e3:.2f} ms per pass",
          flush=True)  # fmt: skip

    def ours(x: mx.array, kernel: str = "auto") -> Callable[[Any], mx.array]:
        return lambda w: native.quantized_matmul(x, *w, True, GROUP, BITS, kernel=kernel)

    rows = []
    for m in ROWS:
        x = mx.random.normal((m, K), key=mx.random.key(m)).astype(mx.float16)
        mx.eval(x)
        calls = max(20 if m <= 16 else 5, count)
        osaurus = timed(ours(x), r16, calls)
        routes = {  # MLX's layout, each kernel on its own: "int8" is VNNI where the CPU has it
            kernel: timed(ours(x, kernel), mlx_layout, calls)
            for kernel in ("int8", "int8-avx2", "float")
        }
        blas = timed(lambda w, x=x: x.astype(mx.float32) @ w.T, f32, calls)
        mlx = None
        if m in MLX_ROWS:  # at its best: MLX's kernel is ~40x slower still with float16 rows
            x32 = x.astype(mx.float32)
            mlx = timed(
                lambda w, x32=x32: mx.quantized_matmul(x32, *w, True, GROUP, BITS), mlx_layout, 3
            )
        row = {
            "rows": m,
            "osaurus_ms": osaurus * 1e3,
            "osaurus_in_cache_ms": timed(ours(x), r16[:1], calls) * 1e3,
            "int8_kernel_ms": routes["int8"] * 1e3,
            "int8_avx2_kernel_ms": routes["int8-avx2"] * 1e3,
            "float_kernel_ms": routes["float"] * 1e3,
            "mlx_ms": mlx * 1e3 if mlx else None,
            "float32_blas_ms": blas * 1e3,
            "osaurus_gb_s": weight_bytes / osaurus / 1e9,
            "roofline_share": roofline / osaurus,
        }
        rows.append(row)
        mlx_text = f"{row['mlx_ms']:8.1f}" if mlx else "       -"
        print(f"rows {m:4}: osaurus {row['osaurus_ms']:7.2f} ms ({row['osaurus_gb_s']:5.1f} GB/s, "
              f"{row['roofline_share']:4.0%} of roofline; in cache "
              f"{row['osaurus_in_cache_ms']:7.2f} ms)  MLX layout: "
              f"int8 {row['int8_kernel_ms']:7.2f} ms  "
              f"int8-avx2 {row['int8_avx2_kernel_ms']:7.2f} ms  "
              f"float {row['float_kernel_ms']:7.2f} ms  mlx {mlx_text} ms  "
              f"float32 BLAS {row['float32_blas_ms']:7.2f} ms", flush=True)  # fmt: skip

    one, eight = rows[0], rows[ROWS.index(8)]
    result = {
        "matrix": f"{N} x {K}, {BITS}-bit group {GROUP}, float16 scales and biases",
        "kernel": status().describe(),
        "weight_bytes": weight_bytes,
        "copies": count,
        "cache_bytes": cache,
        "read_bandwidth_gb_s": bandwidth / 1e9,
        "roofline_ms": roofline * 1e3,
        "rows": rows,
        "targets": [
            {"figure": "batch 1: share of the bandwidth roofline",
             "value": one["roofline_share"], "goal": ">= 0.6", "met": one["roofline_share"] >= 0.6},
            {"figure": "batch 8 time / batch 1 time",
             "value": eight["osaurus_ms"] / one["osaurus_ms"], "goal": "<= 2",
             "met": eight["osaurus_ms"] / one["osaurus_ms"] <= 2},
            {"figure": "weights in cache: batch 8 time / batch 1 time",
             "value": eight["osaurus_in_cache_ms"] / one["osaurus_in_cache_ms"], "goal": "",
             "met": None},
            {"figure": "batch 1: osaurus vs MLX's kernel (speed-up)",
             "value": one["mlx_ms"] / one["osaurus_ms"], "goal": "", "met": None},
            {"figure": "batch 1: osaurus vs float32 BLAS (speed-up)",
             "value": one["float32_blas_ms"] / one["osaurus_ms"], "goal": "", "met": None},
        ],
    }  # fmt: skip
    save_result("kernel", result, markdown(result))


def markdown(result: dict) -> str:
    lines = [
        f"Quantized matmul alone: {result['matrix']} ({result['weight_bytes'] / 1e6:.1f} MB), "
        f"{result['kernel']}; each call reads the next of {result['copies']} copies (twice the "
        f"{result['cache_bytes'] / 2**20:.0f} MiB cache); read bandwidth "
        f"{result['read_bandwidth_gb_s']:.1f} GB/s, so one pass over the weights takes at least "
        f"{result['roofline_ms']:.2f} ms.",
        "",
        "| rows of x | osaurus (ms) | GB/s | of roofline | osaurus, in cache (ms) "
        "| MLX layout: int8 kernel (ms) "
        "| int8 AVX2 kernel (ms) | float kernel (ms) | MLX's kernel, float32 x (ms) "
        "| float32 BLAS (ms) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in result["rows"]:
        mlx = f"{r['mlx_ms']:.1f}" if r["mlx_ms"] else "-"
        lines.append(
            f"| {r['rows']} | {r['osaurus_ms']:.2f} | {r['osaurus_gb_s']:.1f} | "
            f"{r['roofline_share']:.0%} | {r['osaurus_in_cache_ms']:.2f} "
            f"| {r['int8_kernel_ms']:.2f} "
            f"| {r['int8_avx2_kernel_ms']:.2f} | {r['float_kernel_ms']:.2f} "
            f"| {mlx} | {r['float32_blas_ms']:.2f} |"
        )
    lines += [
        "",
        "osaurus = what the server runs: the weights repacked at load into the kernel's r16 "
        "layout (16 output rows interleaved per vector), x rounded to int8 per group as "
        "llama.cpp does. The MLX-layout columns take the weights as mx.quantize stores them "
        "(the server's path for a matrix it cannot repack): int8 is AVX-512 VNNI where the "
        "CPU has it, else AVX2 (the int8 AVX2 column runs the AVX2 one there too); the float "
        "kernel keeps x in float32. In cache: one copy, read again and again (the other "
        "columns rotate through all of them).",
    ]
    lines += ["", "| target | value | goal | met |", "|---|---:|---|---|"]
    for t in result["targets"]:
        met = "" if t["met"] is None else ("yes" if t["met"] else "no")
        lines.append(f"| {t['figure']} | {t['value']:.2f} | {t['goal']} | {met} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
