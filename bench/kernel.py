"""The quantized-matmul kernel alone: osaurus' native kernel beside MLX's and the float32 BLAS.

One 4-bit group-32 matrix of a 7-8B model's MLP (14336 x 4096, float16 scales and biases,
~37 MB: larger than the caches), multiplied by 1 to 128 rows of x. Each figure is the median
of several calls; the roofline is the machine's read bandwidth, measured here in the same run
(all cores summing a 1 GiB array). Writes kernel.json and kernel.md to bench/results (or OUT).

    python -m bench.kernel
"""

from __future__ import annotations

from osaurus.engine.blas import preload_blas

preload_blas()  # MLX's float32 path runs on OpenBLAS, as in the server

import json  # noqa: E402
import os  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from concurrent.futures import ThreadPoolExecutor  # noqa: E402
from pathlib import Path  # noqa: E402

import mlx.core as mx  # noqa: E402
import numpy as np  # noqa: E402

from osaurus.engine.native import kernels, status  # noqa: E402

N, K, BITS, GROUP = 14336, 4096, 4, 32
ROWS = (1, 2, 4, 8, 16, 32, 64, 128)
MLX_ROWS = (1, 8)  # MLX's own kernel is slow: two points are enough


def read_bandwidth(gib: float = 1.0, repeats: int = 5) -> float:
    """Bytes per second that all cores read, summing disjoint slices of one large array."""
    data = np.ones(int(gib * 2**30) // 8, dtype=np.float64)
    threads = os.cpu_count() or 1
    slices = np.array_split(data, threads)
    best = 0.0
    with ThreadPoolExecutor(threads) as pool:
        for _ in range(repeats):
            start = time.perf_counter()
            list(pool.map(np.sum, slices))  # numpy releases the GIL while it sums
            best = max(best, data.nbytes / (time.perf_counter() - start))
    return best


def timed(fn, calls: int) -> float:
    mx.eval(fn())  # warm up
    samples = []
    for _ in range(calls):
        start = time.perf_counter()
        mx.eval(fn())
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def main() -> None:
    native = kernels()
    if native is None:
        raise SystemExit(f"the native kernel is not available: {status().detail}")
    w = mx.random.normal((N, K), key=mx.random.key(0)) * 0.02
    q, scales, biases = mx.quantize(w, group_size=GROUP, bits=BITS)
    scales, biases = scales.astype(mx.float16), biases.astype(mx.float16)
    w32 = mx.dequantize(q, scales, biases, GROUP, BITS).astype(mx.float32)
    mx.eval(q, scales, biases, w32)
    del w
    weight_bytes = q.nbytes + scales.nbytes + biases.nbytes
    bandwidth = read_bandwidth()
    roofline = weight_bytes / bandwidth
    print(f"weights {weight_bytes / 1e6:.1f} MB; read bandwidth {bandwidth / 1e9:.1f} GB/s; "
          f"roofline {roofline * 1e3:.2f} ms per pass")  # fmt: skip

    rows = []
    for m in ROWS:
        x = mx.random.normal((m, K), key=mx.random.key(m)).astype(mx.float16)
        mx.eval(x)
        calls = 20 if m <= 16 else 5
        ours = timed(
            lambda x=x: native.quantized_matmul(x, q, scales, biases, True, GROUP, BITS), calls
        )
        routes = {  # each kernel on its own: "int8" is the VNNI one where the CPU has it
            kernel: timed(
                lambda x=x, k=kernel: native.quantized_matmul(
                    x, q, scales, biases, True, GROUP, BITS, kernel=k
                ),
                calls,
            )
            for kernel in ("int8", "int8-avx2", "float")
        }
        f32 = timed(lambda x=x: x.astype(mx.float32) @ w32.T, calls)
        mlx = None
        if m in MLX_ROWS:  # at its best: MLX's kernel is ~40x slower still with float16 rows
            x32 = x.astype(mx.float32)
            mlx = timed(
                lambda x32=x32: mx.quantized_matmul(x32, q, scales, biases, True, GROUP, BITS), 3
            )
        row = {
            "rows": m,
            "osaurus_ms": ours * 1e3,
            "int8_kernel_ms": routes["int8"] * 1e3,
            "int8_avx2_kernel_ms": routes["int8-avx2"] * 1e3,
            "float_kernel_ms": routes["float"] * 1e3,
            "mlx_ms": mlx * 1e3 if mlx else None,
            "float32_blas_ms": f32 * 1e3,
            "osaurus_gb_s": weight_bytes / ours / 1e9,
            "roofline_share": roofline / ours,
        }
        rows.append(row)
        mlx_text = f"{row['mlx_ms']:8.1f}" if mlx else "       -"
        print(f"rows {m:4}: osaurus {row['osaurus_ms']:7.2f} ms ({row['osaurus_gb_s']:5.1f} GB/s, "
              f"{row['roofline_share']:4.0%} of roofline)  int8 {row['int8_kernel_ms']:7.2f} ms  "
              f"int8-avx2 {row['int8_avx2_kernel_ms']:7.2f} ms  "
              f"float {row['float_kernel_ms']:7.2f} ms  mlx {mlx_text} ms  "
              f"float32 BLAS {row['float32_blas_ms']:7.2f} ms", flush=True)  # fmt: skip

    one, eight = rows[0], rows[ROWS.index(8)]
    result = {
        "matrix": f"{N} x {K}, {BITS}-bit group {GROUP}, float16 scales and biases",
        "kernel": status().describe(),
        "weight_bytes": weight_bytes,
        "read_bandwidth_gb_s": bandwidth / 1e9,
        "roofline_ms": roofline * 1e3,
        "rows": rows,
        "targets": [
            {"figure": "batch 1: share of the bandwidth roofline",
             "value": one["roofline_share"], "goal": ">= 0.6", "met": one["roofline_share"] >= 0.6},
            {"figure": "batch 8 time / batch 1 time",
             "value": eight["osaurus_ms"] / one["osaurus_ms"], "goal": "<= 2",
             "met": eight["osaurus_ms"] / one["osaurus_ms"] <= 2},
            {"figure": "batch 1: osaurus vs MLX's kernel (speed-up)",
             "value": one["mlx_ms"] / one["osaurus_ms"], "goal": "", "met": None},
            {"figure": "batch 1: osaurus vs float32 BLAS (speed-up)",
             "value": one["float32_blas_ms"] / one["osaurus_ms"], "goal": "", "met": None},
        ],
    }  # fmt: skip
    out = Path(os.environ.get("OUT", Path(__file__).parent / "results"))
    out.mkdir(parents=True, exist_ok=True)
    (out / "kernel.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / "kernel.md").write_text(markdown(result))
    print(markdown(result))


def markdown(result: dict) -> str:
    lines = [
        f"Quantized matmul alone: {result['matrix']} ({result['weight_bytes'] / 1e6:.1f} MB), "
        f"{result['kernel']}; read bandwidth {result['read_bandwidth_gb_s']:.1f} GB/s, so one "
        f"pass over the weights takes at least {result['roofline_ms']:.2f} ms.",
        "",
        "| rows of x | osaurus (ms) | GB/s | of roofline | int8 kernel (ms) "
        "| int8 AVX2 kernel (ms) | float kernel (ms) | MLX's kernel, float32 x (ms) "
        "| float32 BLAS (ms) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in result["rows"]:
        mlx = f"{r['mlx_ms']:.1f}" if r["mlx_ms"] else "-"
        lines.append(
            f"| {r['rows']} | {r['osaurus_ms']:.2f} | {r['osaurus_gb_s']:.1f} | "
            f"{r['roofline_share']:.0%} | {r['int8_kernel_ms']:.2f} "
            f"| {r['int8_avx2_kernel_ms']:.2f} | {r['float_kernel_ms']:.2f} "
            f"| {mlx} | {r['float32_blas_ms']:.2f} |"
        )
    lines += [
        "",
        'osaurus = the server\'s choice ("auto"): the int8 kernel, except that where it is the '
        "AVX2 one, sequences of 64 rows and more dequantize + call the float32 BLAS. The int8 "
        "kernels round x to int8 per group (as llama.cpp does): AVX-512 VNNI where the CPU has "
        "it, else AVX2 (the int8 AVX2 column runs the AVX2 one there too); the float kernel "
        "keeps x in float32.",
    ]
    lines += ["", "| target | value | goal | met |", "|---|---:|---|---|"]
    for t in result["targets"]:
        met = "" if t["met"] is None else ("yes" if t["met"] else "no")
        lines.append(f"| {t['figure']} | {t['value']:.2f} | {t['goal']} | {met} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
