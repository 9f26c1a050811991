"""A Llama model with its norms, RoPE and attention swapped for osaurus' primitives computes
what it computed with MLX's: over a prompt, step by step with a KV cache, and in batched
decoding (left-padded, so attention gets mlx-lm's masks)."""

from __future__ import annotations

import sys
import tempfile

import mlx.core as mx
import pytest
from mlx_lm.models import llama
from tiny_llama import batch_generate, greedy_logits, tiny_llama

from osaurus.engine.fast_layers import (
    NativeLlama3RoPE,
    NativeRMSNorm,
    NativeRoPE,
    use_native_fast_ops,
)

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="the native kernel serves MLX's CPU backend"
)

LLAMA3_SCALING = {
    "rope_type": "llama3",
    "factor": 32.0,
    "low_freq_factor": 1.0,
    "high_freq_factor": 4.0,
    "original_max_position_embeddings": 8192,
}


@pytest.fixture(autouse=True)
def mlx_lm_attention(monkeypatch):
    """Each test starts from mlx-lm's own attention function (the swap replaces it in the
    model's file, for the whole process) and leaves it so."""
    function = llama.scaled_dot_product_attention
    monkeypatch.setattr(
        llama, "scaled_dot_product_attention", getattr(function, "osaurus_original", function)
    )


@pytest.mark.parametrize(
    ("rope_scaling", "rope_class"), [(None, NativeRoPE), (LLAMA3_SCALING, NativeLlama3RoPE)]
)
def test_swapped_model_computes_the_same(rope_scaling, rope_class) -> None:
    model = tiny_llama(rope_scaling=rope_scaling)
    prompt = mx.array([[5, 17, 42, 7, 99, 3], [1, 2, 3, 4, 5, 6]])
    before = greedy_logits(model, prompt)

    # Per layer: two norms and a RoPE; plus the final norm and llama.py's attention function.
    assert use_native_fast_ops(model) == 2 * 3 + 1 + 1
    assert isinstance(model.model.norm, NativeRMSNorm)
    assert isinstance(model.model.layers[0].self_attn.rope, rope_class)
    assert llama.scaled_dot_product_attention.osaurus_original is not None

    after = greedy_logits(model, prompt)
    scale = float(mx.abs(before).max())
    assert float(mx.abs(after - before).max()) <= 1e-4 * scale
    assert mx.array_equal(mx.argmax(after, -1), mx.argmax(before, -1))


def test_batched_decoding_computes_the_same() -> None:
    # mlx-lm's BatchGenerator gives RoPE one offset per sequence.
    model = tiny_llama()
    tokens, logprobs = batch_generate(model)
    use_native_fast_ops(model)
    native_tokens, native_logprobs = batch_generate(model)
    assert native_tokens == tokens
    assert float(mx.abs(native_logprobs - logprobs).max()) < 1e-4


def test_a_second_swap_changes_nothing() -> None:
    model = tiny_llama()
    use_native_fast_ops(model)
    assert use_native_fast_ops(model) == 0


def test_mlx_lms_generate_loop_gets_the_native_logsumexp() -> None:
    import importlib

    from osaurus.engine.fast_layers import use_native_logsumexp

    use_native_logsumexp()
    generate_mx = importlib.import_module("mlx_lm.generate").mx
    logits = 3 * mx.random.normal((4, 1000), key=mx.random.key(11))
    want = mx.logsumexp(logits, axis=-1, keepdims=True)
    got = generate_mx.logsumexp(logits, axis=-1, keepdims=True)
    with tempfile.NamedTemporaryFile("r", suffix=".dot") as dot:
        mx.export_to_dot(dot.name, got)  # the lazy graph names its primitive
        assert "OsaurusLogSumExp" in dot.read()
    assert float(mx.abs(got - want).max()) < 1e-4
    # What the native op does not take goes to MLX's: another axis, no keepdims, float16.
    assert mx.allclose(generate_mx.logsumexp(logits, axis=0), mx.logsumexp(logits, axis=0))
    half = logits.astype(mx.float16)
    assert generate_mx.logsumexp(half, axis=-1, keepdims=True).dtype == mx.float16
    assert generate_mx.array is mx.array  # every other name is MLX's
    assert not use_native_logsumexp()  # once per process
