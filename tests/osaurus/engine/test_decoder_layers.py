"""A llama decoder layer as two native primitives computes what the layer computed with the
native ops one by one: over a prompt, step by step on a KV cache, batched (left padding, per
sequence offsets), and with prompt chunks; layers it cannot compute are left alone."""

from __future__ import annotations

import sys

import mlx.core as mx
import mlx.nn as nn
import pytest
from mlx_lm.models import llama
from tiny_llama import batch_generate, greedy_logits, tiny_llama

from osaurus.engine import quantized_layers
from osaurus.engine.decoder_layers import NativeLlamaBlock, use_native_decoder_layers
from osaurus.engine.fast_layers import use_native_fast_ops
from osaurus.engine.fused_projections import fuse_projections
from osaurus.engine.native import loaded_kernels
from osaurus.engine.options import KVCacheDtype
from osaurus.engine.quantized_layers import (
    compute_in_float32,
    repack_for_native_kernel,
    use_native_kernels,
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
PROMPT = mx.array([[5, 17, 42, 7, 99, 3], [1, 2, 3, 4, 5, 6]])


@pytest.fixture(autouse=True)
def exact_kernel(monkeypatch):
    """The float kernel: x is not rounded to int8, so the only differences left between the
    fused and unfused layer are float32 rounding (with int8 rounding, a last-bit difference in
    the SwiGLU can move x's rounding, which is as exact but not comparable)."""
    monkeypatch.setattr(quantized_layers, "KERNEL", "float")
    function = llama.scaled_dot_product_attention  # as test_fast_layers: mlx-lm's own first
    monkeypatch.setattr(
        llama, "scaled_dot_product_attention", getattr(function, "osaurus_original", function)
    )


def native_llama(repack: bool = False, **overrides) -> llama.Model:
    """A quantized tiny Llama on every native layer, as the server loads a quantized model
    (repack: and in the r16 layout, where this machine has its kernel)."""
    model = tiny_llama(**overrides)
    nn.quantize(model, group_size=32, bits=4)
    mx.eval(model.parameters())
    assert use_native_kernels(model) > 0
    compute_in_float32(model)
    fuse_projections(model)
    use_native_fast_ops(model)
    if repack:
        repack_for_native_kernel(model)
    return model


def assert_close(got: mx.array, want: mx.array) -> None:
    scale = float(mx.abs(want).max())
    assert float(mx.abs(got - want).max()) <= 1e-4 * scale
    assert mx.array_equal(mx.argmax(got, -1), mx.argmax(want, -1))


@pytest.mark.parametrize("rope_scaling", [None, LLAMA3_SCALING])
@pytest.mark.parametrize("traditional", [False, True])
def test_fused_layers_compute_the_same(rope_scaling, traditional) -> None:
    model = native_llama(rope_scaling=rope_scaling, rope_traditional=traditional)
    before = greedy_logits(model, PROMPT)
    assert use_native_decoder_layers(model) == 2
    assert all(type(layer) is NativeLlamaBlock for layer in model.model.layers)
    assert_close(greedy_logits(model, PROMPT), before)


def test_batched_decoding_computes_the_same() -> None:
    model = native_llama()
    tokens, logprobs = batch_generate(model)
    use_native_decoder_layers(model)
    fused_tokens, fused_logprobs = batch_generate(model)
    assert fused_tokens == tokens
    assert float(mx.abs(fused_logprobs - logprobs).max()) < 1e-4


@pytest.mark.parametrize("repack", [False, True])
def test_a_prompt_in_chunks_and_without_a_cache(repack) -> None:
    model = native_llama(repack=repack)
    # 100 rows: past blas_rows() on AVX2, where a repacked layer still takes the primitives.
    prompt = mx.array([[(7 * i) % 290 + 3 for i in range(100)]])
    whole = model(prompt)
    use_native_decoder_layers(model)
    assert_close(model(prompt), whole)  # no cache: RoPE from 0, causal mask
    from mlx_lm.models.cache import make_prompt_cache

    cache = make_prompt_cache(model)
    model(prompt[:, :70], cache=cache)
    assert_close(model(prompt[:, 70:], cache=cache)[:, -1], whole[:, -1])


def test_int8_kernel_still_decodes_the_same_tokens(monkeypatch) -> None:
    monkeypatch.setattr(quantized_layers, "KERNEL", "auto")
    model = native_llama()
    before = greedy_logits(model, PROMPT, steps=6)
    use_native_decoder_layers(model)
    after = greedy_logits(model, PROMPT, steps=6)
    assert mx.array_equal(mx.argmax(after, -1), mx.argmax(before, -1))
    assert float(mx.abs(after - before).max()) <= 0.05 * float(mx.abs(before).max())


def test_layers_with_biases_or_unquantized_stay_as_they_are() -> None:
    assert use_native_decoder_layers(native_llama(attention_bias=True)) == 0
    plain = tiny_llama()  # float weights: mlx-lm's own matmuls
    use_native_fast_ops(plain)
    assert use_native_decoder_layers(plain) == 0


def test_a_second_swap_changes_nothing() -> None:
    model = native_llama()
    use_native_decoder_layers(model)
    assert use_native_decoder_layers(model) == 0


def test_other_dtypes_take_mlx_lms_path() -> None:
    model = native_llama()
    layer = model.model.layers[0]
    x = mx.random.normal((1, 3, 128), key=mx.random.key(3)).astype(mx.float16)
    want = layer(x, "causal")
    use_native_decoder_layers(model)
    assert mx.array_equal(layer(x, "causal"), want).item()


def test_bad_arguments_are_named() -> None:
    model = native_llama()
    attn = model.model.layers[0].self_attn
    q = attn.q_proj
    qkv = (q["weight"], q["scales"], q["biases"], q.group_size, q.bits)
    native = loaded_kernels()
    common = dict(n_heads=4, n_kv_heads=2, head_dim=32, rope_dims=32, traditional=False,
                  base=10000.0, rope_scale=1.0, offset=0)  # fmt: skip
    x = mx.zeros((1, 2, 128))
    norm = mx.ones((128,))
    with pytest.raises(ValueError, match="x must be float32"):
        native.attention_inputs(x.astype(mx.float16), norm, 1e-5, qkv, **common)
    with pytest.raises(ValueError, match="qkv is a 256 x 128 matrix, expected 384 x 128"):
        native.attention_inputs(x, norm, 1e-5, qkv, **(common | {"n_heads": 8}))
    with pytest.raises(ValueError, match="norm weight must be float32 of shape \\(128,\\)"):
        native.attention_inputs(x, mx.ones((64,)), 1e-5, qkv, **common)
    with pytest.raises(ValueError, match="exactly one of base and freqs"):
        native.attention_inputs(x, norm, 1e-5, qkv, **(common | {"base": None}))
    with pytest.raises(ValueError, match="kv_dtype must be float32 or float16, got bfloat16"):
        native.attention_inputs(x, norm, 1e-5, qkv, **common, kv_dtype=mx.bfloat16)


def test_float16_keys_and_values_are_the_float32_ones_rounded() -> None:
    model = native_llama()
    block = model.model.layers[0]
    attn = block.self_attn
    q = attn.q_proj
    native = loaded_kernels()
    x = mx.random.normal((2, 5, 128), key=mx.random.key(4))
    args = dict(n_heads=4, n_kv_heads=2, head_dim=32, rope_dims=32, traditional=False,
                base=10000.0, rope_scale=1.0, offset=mx.array([3, 0]))  # fmt: skip
    inputs = (x, block.input_layernorm["weight"], 1e-5,
              (q["weight"], q["scales"], q["biases"], q.group_size, q.bits))  # fmt: skip
    q32, k32, v32 = native.attention_inputs(*inputs, **args)
    q16, k16, v16 = native.attention_inputs(*inputs, **args, kv_dtype=mx.float16)
    assert (q16.dtype, k16.dtype, v16.dtype) == (mx.float32, mx.float16, mx.float16)
    assert mx.array_equal(q16, q32).item()
    assert mx.array_equal(k16, k32.astype(mx.float16)).item()
    assert mx.array_equal(v16, v32.astype(mx.float16)).item()


def test_a_float16_kv_cache_decodes_the_same_tokens() -> None:
    from mlx_lm.models.cache import make_prompt_cache

    model = native_llama()
    before = greedy_logits(model, PROMPT, steps=6)
    tokens, _ = batch_generate(model)
    use_native_decoder_layers(model, KVCacheDtype.FLOAT16)
    cache = make_prompt_cache(model)
    model(PROMPT, cache=cache)
    assert all(c.keys.dtype == c.values.dtype == mx.float16 for c in cache)
    after = greedy_logits(model, PROMPT, steps=6)
    assert mx.array_equal(mx.argmax(after, -1), mx.argmax(before, -1))
    assert float(mx.abs(after - before).max()) <= 1e-2 * float(mx.abs(before).max())
    assert batch_generate(model)[0] == tokens  # batched: left padding, per-row offsets


def _generate_with_joins_and_leaves(model: llama.Model) -> tuple[dict, list[mx.array]]:
    """mlx-lm's BatchGenerator as the scheduler runs it: two prompts, one leaving after 20
    tokens (the batch filtered), a third joining at step 10 (extended), the longest going past
    the KV cache's first 256 positions (its buffer grown). Tokens per uid, logprobs per step."""
    from mlx_lm.generate import BatchGenerator

    gen = BatchGenerator(model, stop_tokens=[])
    uids = gen.insert([[5, 17, 42, 7, 99, 3], [8, 9]], max_tokens=[270, 20])
    tokens: dict[int, list[int]] = {}
    logprobs: list[mx.array] = []
    finished: set[int] = set()
    step = 0
    while len(finished) < len(uids):
        step += 1
        if step == 10:
            uids += gen.insert([[11, 12, 13, 14]], max_tokens=[30])
        for r in sorted(gen.next()[1], key=lambda r: r.uid):
            tokens.setdefault(r.uid, []).append(r.token)
            logprobs.append(r.logprobs)
            if r.finish_reason is not None:
                finished.add(r.uid)
    gen.close()
    return tokens, logprobs


@pytest.mark.parametrize("kv_cache_dtype", [KVCacheDtype.FLOAT32, KVCacheDtype.FLOAT16])
def test_the_kv_cache_written_in_place_is_what_update_and_fetch_writes(
    monkeypatch, kv_cache_dtype
) -> None:
    from osaurus.engine import decoder_layers

    model = native_llama()
    use_native_decoder_layers(model, kv_cache_dtype)
    tokens, logprobs = _generate_with_joins_and_leaves(model)  # written by attention_inputs
    assert len(tokens[0]) == 270 and len(tokens[1]) == 20 and len(tokens[2]) == 30
    monkeypatch.setattr(decoder_layers, "_write_position", lambda *args: None)
    want_tokens, want_logprobs = _generate_with_joins_and_leaves(model)  # by mlx-lm
    assert tokens == want_tokens
    assert all(mx.array_equal(a, b).item() for a, b in zip(logprobs, want_logprobs, strict=True))


def test_a_decode_step_writes_the_kv_cache_in_place() -> None:
    from mlx_lm.models.cache import make_prompt_cache

    model = native_llama()
    use_native_decoder_layers(model)
    cache = make_prompt_cache(model)
    logits = model(PROMPT, cache=cache)  # a new buffer: mlx-lm's update_and_fetch
    mx.eval(logits)
    copies = loaded_kernels().kv_cache_copies()
    for _ in range(8):
        logits = model(mx.argmax(logits[:, -1:], axis=-1), cache=cache)
        mx.eval(logits)
    assert loaded_kernels().kv_cache_copies() == copies
    assert cache[0].offset == PROMPT.shape[1] + 8


def test_a_kv_cache_snapshot_is_left_as_it_was() -> None:
    """A buffer something else still holds (a prompt-cache snapshot) is copied, not written."""
    from mlx_lm.models.cache import make_prompt_cache

    model = native_llama()
    use_native_decoder_layers(model)
    cache = make_prompt_cache(model)
    logits = model(PROMPT, cache=cache)
    mx.eval(logits)
    snapshot = [layer.state for layer in cache]
    saved = [(mx.array(keys), mx.array(values)) for keys, values, _ in snapshot]
    mx.eval(saved)
    copies = loaded_kernels().kv_cache_copies()
    want = greedy_logits(model, PROMPT, steps=3)
    got = [logits[:, -1]]
    for _ in range(3):
        got.append(model(mx.argmax(got[-1], axis=-1)[:, None], cache=cache)[:, -1])
    assert mx.array_equal(mx.stack(got, axis=1), want).item()
    assert loaded_kernels().kv_cache_copies() == copies + 2 * len(cache)  # once per buffer
    for (keys, values, _), (old_keys, old_values) in zip(snapshot, saved, strict=True):
        assert mx.array_equal(keys, old_keys).item() and mx.array_equal(values, old_values).item()


def test_bad_kv_cache_buffers_are_named() -> None:
    model = native_llama()
    block = model.model.layers[0]
    q = block.self_attn.q_proj
    native = loaded_kernels()
    common = dict(n_heads=4, n_kv_heads=2, head_dim=32, rope_dims=32, traditional=False,
                  base=10000.0, rope_scale=1.0, offset=0)  # fmt: skip
    x = mx.zeros((1, 2, 128))
    inputs = (x, block.input_layernorm["weight"], 1e-5,
              (q["weight"], q["scales"], q["biases"], q.group_size, q.bits))  # fmt: skip
    buffer = mx.zeros((1, 2, 8, 32))
    with pytest.raises(ValueError, match="give both cache_keys and cache_values"):
        native.attention_inputs(*inputs, **common, cache_keys=buffer)
    with pytest.raises(ValueError, match=r"cache_values must be float32 of shape \(1, 2, posi"):
        native.attention_inputs(*inputs, **common, cache_keys=buffer,
                                cache_values=mx.zeros((1, 2, 8, 16)))  # fmt: skip
    with pytest.raises(ValueError, match=r"cache_keys must be float16"):
        native.attention_inputs(*inputs, **common, kv_dtype=mx.float16, cache_keys=buffer,
                                cache_values=buffer)  # fmt: skip
    with pytest.raises(ValueError, match=r"write_pos \(7\) and the 2 new positions must fit"):
        native.attention_inputs(*inputs, **common, cache_keys=buffer, cache_values=buffer,
                                write_pos=7)  # fmt: skip
    q_, k_, v_ = native.attention_inputs(*inputs, **common, cache_keys=buffer,
                                         cache_values=buffer, write_pos=6)  # fmt: skip
    assert k_.shape == v_.shape == (1, 2, 8, 32)
    use_native_decoder_layers(model)
    a = block.native
    layer = dict(scale=a.scale, causal=True, mask=None, o=a.o, norm_weight=a.post_norm_weight,
                 eps=a.post_eps, gate_up=a.gate_up, down=a.down)  # fmt: skip
    for bad in (9, 1, -1):
        with pytest.raises(ValueError, match=rf"kv_length \({bad}\) must be 0 \(all\) or betw"):
            native.attention_output_mlp(x, q_, k_, v_, **layer, kv_length=bad)
    mx.eval(native.attention_output_mlp(x, q_, k_, v_, **layer, kv_length=8))


def _decode_after_a_filter(model: llama.Model, copies: list[int]) -> list[mx.array]:
    """Two left-padded prompts in a BatchKVCache, two decode steps, then the unpadded one
    filtered out (mlx-lm shifts the buffers left: a strided view) and four more steps.
    Logits per step; copies gets the KV-cache copy count after each step."""
    from mlx_lm.models.cache import BatchKVCache

    cache = [BatchKVCache(left_padding=[3, 0]) for _ in model.layers]
    prompt = mx.array([[0, 0, 0, 5, 17, 42], [1, 2, 3, 4, 5, 6]])
    logits = [model(prompt, cache=cache)[:, -1]]
    for step in range(6):
        if step == 2:
            for layer in cache:
                layer.filter(mx.array([0]))
            logits[-1] = logits[-1][:1]
        logits.append(model(mx.argmax(logits[-1], axis=-1)[:, None], cache=cache)[:, -1])
        mx.eval(logits[-1])
        copies.append(loaded_kernels().kv_cache_copies())
    return logits


def test_a_shifted_batch_kv_cache_is_copied_once(monkeypatch) -> None:
    """After filter's left shift a buffer is a strided view: the next step copies it into a
    buffer of its own, once, and the steps after write that one in place."""
    from osaurus.engine import decoder_layers

    model = native_llama()
    use_native_decoder_layers(model)
    copies = [loaded_kernels().kv_cache_copies()]
    logits = _decode_after_a_filter(model, copies)
    layers = len(model.layers)
    assert [c - copies[0] for c in copies] == [
        0,
        0,
        0,
        2 * layers,
        2 * layers,
        2 * layers,
        2 * layers,
    ]
    monkeypatch.setattr(decoder_layers, "_write_position", lambda *args: None)
    want = _decode_after_a_filter(model, [])
    assert all(mx.array_equal(a, b).item() for a, b in zip(logits, want, strict=True))
