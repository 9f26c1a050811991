"""Where a decode step's time goes, in-process: Python, our quantized matmuls, MLX's other ops,
and the scheduler around them.

For each model (the test model; the random-weight 1B shape with SYNTHETIC=1b) and batch size,
B sequences are prefilled with a short prompt, then decode steps are timed in parts:

- graph: calling the model in Python, which only records MLX's lazy graph;
- eval: evaluating that graph, split into
  - quantized matmuls: the same matmuls (same layers, same input shapes) evaluated alone, as
    one graph of independent ops;
  - attention: each layer's attention over what its KV cache holds after the timed steps,
    evaluated alone the same way; and
  - other ops: the rest of eval (norms, RoPE, elementwise, MLX's per-op scheduling);
- scheduler: one step of mlx-lm's BatchGenerator, as the server runs it (sampling, batch
  bookkeeping), beyond graph + eval.

Ops per step counts the primitives of the step's graph (mx.export_to_dot). Writes profile.json
and profile.md to bench/results (or OUT). Transport (bridge, gRPC) is measured by `make bench`
(the overhead mode and the gap between the server and the in-process rows).

    python -m bench.profile                 # BATCHES=1,8 STEPS=24 SYNTHETIC=1b
"""

from __future__ import annotations

from osaurus.engine.blas import preload_blas

preload_blas()  # as the server does: before anything imports mlx

import os  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import mlx.core as mx  # noqa: E402
from mlx_lm.generate import BatchGenerator  # noqa: E402
from mlx_lm.models.cache import make_prompt_cache  # noqa: E402

from bench.report import save_result  # noqa: E402
from osaurus.engine.loaded_model import LoadedModel, load_model  # noqa: E402
from osaurus.engine.native import loaded_kernels  # noqa: E402
from osaurus.engine.quantized_layers import (  # noqa: E402
    NativeQuantizedEmbedding,
    NativeQuantizedLinear,
    input_width,
)
from osaurus.models.registry import describe  # noqa: E402

PROMPT_TOKENS = 48


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1e3


def count_ops(outputs: mx.array) -> int:
    """Primitives in the lazy graph of `outputs` (not yet evaluated)."""
    with tempfile.NamedTemporaryFile("r", suffix=".dot") as dot:
        mx.export_to_dot(dot.name, outputs)
        # Ops are drawn as rectangles, arrays as plain nodes.
        return sum(1 for line in open(dot.name) if "shape=rectangle" in line)


def native_matmuls(model) -> list[tuple[object, int]]:
    """The model's native quantized layers with their input width (a tied head included)."""
    tied = getattr(getattr(model, "args", None), "tie_word_embeddings", False)
    return [
        (module, input_width(module))
        for _, module in model.named_modules()
        if isinstance(module, NativeQuantizedLinear)
        or (tied and isinstance(module, NativeQuantizedEmbedding))
    ]


def attention_inputs(model, cache: list, batch: int) -> list[tuple]:
    """Per layer: a random query of its heads, the keys and values its cache holds, its scale."""
    inputs = []
    for layer, c in zip(model.layers, cache, strict=True):
        attn = layer.self_attn
        q = mx.random.normal((batch, attn.n_heads, 1, attn.head_dim))
        inputs.append((q, c.keys[..., : c.offset, :], c.values[..., : c.offset, :], attn.scale))
    return inputs


def time_alone(run, steps: int) -> list[float]:
    """Seconds per evaluation of the graph `run()` builds, after two warm-up evaluations."""
    samples = []
    for step in range(steps + 2):
        outs = run()
        start = time.perf_counter()
        mx.eval(outs)
        if step >= 2:
            samples.append(time.perf_counter() - start)
    return samples


def prompts(batch: int) -> list[list[int]]:
    """`batch` distinct prompts of ordinary token ids."""
    return [[(7 * b + i) % 1000 + 100 for i in range(PROMPT_TOKENS)] for b in range(batch)]


def prefilled(lm: LoadedModel, batch: int) -> tuple[list, mx.array]:
    """A cache per layer holding `batch` prompts, and the next input tokens (batch x 1)."""
    cache = make_prompt_cache(lm.model)
    logits = lm.model(mx.array(prompts(batch)), cache=cache)
    mx.eval(logits, [c.state for c in cache])
    return cache, mx.argmax(logits[:, -1:], axis=-1)


def profile(lm: LoadedModel, batch: int, steps: int) -> dict:
    model = lm.model
    cache, tokens = prefilled(lm, batch)
    graph, evaluate, ops = [], [], 0
    for step in range(steps + 2):
        start = time.perf_counter()
        logits = model(tokens, cache=cache)
        tokens = mx.argmax(logits[:, -1:], axis=-1)
        built = time.perf_counter()
        if step == 0:
            ops = count_ops(tokens)
        mx.eval(tokens)
        done = time.perf_counter()
        if step >= 2:  # the first steps warm up
            graph.append(built - start)
            evaluate.append(done - built)

    # The same matmuls alone: random x of each layer's input shape, all in one graph.
    layers = native_matmuls(model)
    xs = [mx.random.normal((batch, 1, width)) for _, width in layers]
    mx.eval(xs)
    matmuls = time_alone(
        lambda: [
            layer.as_linear(x) if isinstance(layer, NativeQuantizedEmbedding) else layer(x)
            for (layer, _), x in zip(layers, xs, strict=True)
        ],
        steps,
    )
    # The attention of every layer over its cache, as the last timed steps read it.
    attending = attention_inputs(model, cache, batch)
    mx.eval(attending[0][0])
    attention = time_alone(
        lambda: [loaded_kernels().attention(q, k, v, scale=s) for q, k, v, s in attending],
        steps,
    )

    # One step of mlx-lm's BatchGenerator, as the scheduler runs it.
    generator = BatchGenerator(model, stop_tokens=[], completion_batch_size=batch,
                               prefill_batch_size=batch, prefill_step_size=128)  # fmt: skip
    generator.insert(prompts(batch), max_tokens=[steps + 8] * batch)
    scheduled = []
    for step in range(steps + 4):
        start = time.perf_counter()
        generator.next()
        if step >= 4:  # prefill and warm-up first
            scheduled.append(time.perf_counter() - start)
    generator.close()

    g, e, k, s = median_ms(graph), median_ms(evaluate), median_ms(matmuls), median_ms(scheduled)
    a = median_ms(attention)
    return {
        "batch": batch,
        "ops_per_step": ops,
        "context_tokens": cache[0].offset,
        "graph_ms": g,
        "eval_ms": e,
        "quantized_matmul_ms": k,
        "attention_ms": a,
        "other_ops_ms": max(0.0, e - k - a),
        "forward_ms": g + e,
        "scheduler_step_ms": s,
        "scheduler_overhead_ms": max(0.0, s - (g + e)),
        "tokens_per_s": batch / (s / 1e3),
    }


def main() -> None:
    from bench import servers, synthetic_models

    batches = [int(b) for b in os.environ.get("BATCHES", "1,8").split(",")]
    steps = int(os.environ.get("STEPS", "24"))
    from osaurus.models.default_model import MODEL_ID

    models_dir, _, _ = servers.prepare_models()
    models = {"test model (135M, 4-bit g32)": models_dir / MODEL_ID}
    for key in filter(None, os.environ.get("SYNTHETIC", "1b").split(",")):
        models[f"{key} random (4-bit g32)"] = synthetic_models.build(key)[0]
    rows = []
    for label, path in models.items():
        lm = load_model(describe(path.name.lower(), path))
        for batch in batches:
            row = {"model": label, "precision": lm.precision.describe()}
            row |= profile(lm, batch, steps)
            rows.append(row)
            print(f"{label:30} batch {batch:2}: step {row['scheduler_step_ms']:6.1f} ms = graph "
                  f"{row['graph_ms']:5.1f} + matmuls {row['quantized_matmul_ms']:5.1f} + attention "
                  f"{row['attention_ms']:4.1f} + other ops "
                  f"{row['other_ops_ms']:5.1f} + scheduler {row['scheduler_overhead_ms']:4.1f} "
                  f"({row['ops_per_step']} ops; {row['tokens_per_s']:.1f} tok/s)",
                  flush=True)  # fmt: skip
        del lm
    save_result("profile", rows, markdown(rows))


def markdown(rows: list[dict]) -> str:
    lines = [
        "Where a decode step's time goes, in-process (median ms per step; "
        "`python -m bench.profile`)",
        "",
        "| model | batch | ops per step | Python graph | quantized matmuls | attention "
        "| other ops | scheduler | step | tokens/s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['batch']} | {r['ops_per_step']} | {r['graph_ms']:.1f} "
            f"| {r['quantized_matmul_ms']:.1f} | {r['attention_ms']:.1f} "
            f"| {r['other_ops_ms']:.1f} "
            f"| {r['scheduler_overhead_ms']:.1f} | {r['scheduler_step_ms']:.1f} "
            f"| {r['tokens_per_s']:.1f} |"
        )
    lines += [
        "",
        "quantized matmuls: the step's matmuls evaluated alone; attention: every layer's "
        f"attention over its KV cache ({rows[0]['context_tokens']} tokens a sequence) evaluated "
        "alone; other ops: the rest of the graph's evaluation; scheduler: mlx-lm's "
        "BatchGenerator step beyond the forward pass.",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
