"""Quantized layers on osaurus' native kernel: which layers move to it, and that the model
computes what it computed on MLX's kernel."""

from __future__ import annotations

import sys

import mlx.core as mx
import mlx.nn as nn
import pytest

from osaurus.engine import quantized_layers
from osaurus.engine.native import kernels
from osaurus.engine.precision import Float32Policy, apply_precision_policy
from osaurus.engine.quantized_layers import (
    NativeQuantizedEmbedding,
    NativeQuantizedLinear,
    is_repacked,
    native_layer_count,
)

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="the native kernel serves MLX's CPU backend"
)


class TiedModel(nn.Module):
    """An embedding whose weights are also the output head, as in the test model."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(256, 128)
        self.norm = nn.RMSNorm(128)
        self.proj = nn.Linear(128, 128, bias=True)

    def __call__(self, tokens):
        return self.embed.as_linear(self.proj(self.norm(self.embed(tokens))))


def quantized_model(bits: int = 4, group_size: int = 32, dtype=mx.float32) -> TiedModel:
    mx.random.seed(0)
    model = TiedModel()
    model.set_dtype(dtype)
    nn.quantize(model, group_size=group_size, bits=bits)
    return model


def test_auto_keeps_a_quantized_model_quantized_on_the_native_kernel(monkeypatch) -> None:
    monkeypatch.setattr(quantized_layers, "KERNEL", "float")  # exact: x is not rounded to int8
    model = quantized_model()
    tokens = mx.array([[1, 2, 3, 200]])
    before = model(tokens)  # MLX's kernel

    precision = apply_precision_policy(model, Float32Policy.AUTO)

    assert precision.describe() == f"4-bit (osaurus {kernels().simd()} kernel)"
    assert isinstance(model.proj, NativeQuantizedLinear)
    assert isinstance(model.embed, NativeQuantizedEmbedding)
    assert native_layer_count(model) == 2
    # The weights are the ones loaded: as stored, or their bytes in the r16 layout.
    assert model.proj.weight.dtype == (mx.uint8 if kernels().repack_available(4) else mx.uint32)
    assert model.proj.weight.nbytes == 128 * 128 // 2
    after = model(tokens)
    scale = float(mx.abs(before).max())
    assert float(mx.abs(after - before).max()) <= 1e-5 * scale


def test_a_half_precision_model_computes_in_float32_between_its_quantized_matmuls() -> None:
    model = quantized_model(dtype=mx.float16)
    tokens = mx.array([[1, 2, 3, 200]])
    before = model(tokens)  # MLX's kernel, float16 throughout
    assert before.dtype == mx.float16

    apply_precision_policy(model, Float32Policy.AUTO)

    # The quantized storage is as loaded; the rest (norm weight, linear bias) is float32.
    assert model.proj.weight.nbytes == 128 * 128 // 2 and model.proj.scales.dtype == mx.float16
    assert model.embed.scales.dtype == mx.float16 and model.embed.biases.dtype == mx.float16
    assert model.norm.weight.dtype == mx.float32 and model.proj.bias.dtype == mx.float32
    assert model.embed(tokens).dtype == mx.float32
    after = model(tokens)
    assert after.dtype == mx.float32
    # float16 activations and int8-rounded x against float32 ones: close, not equal.
    scale = float(mx.abs(before).max())
    assert float(mx.abs(after - before.astype(mx.float32)).max()) <= 2e-2 * scale


def test_eight_bit_runs_natively_too() -> None:
    model = quantized_model(bits=8, group_size=64)
    assert "osaurus" in apply_precision_policy(model, Float32Policy.AUTO).describe()
    assert native_layer_count(model) == 2


def test_a_layout_the_kernel_does_not_take_stays_on_mlx() -> None:
    model = quantized_model(bits=2, group_size=32)
    assert apply_precision_policy(model, Float32Policy.NEVER).describe() == "2-bit (mlx kernel)"
    assert native_layer_count(model) == 0
    # auto: MLX's 2-bit kernel is slow on the CPU, so the float32 copy is used instead.
    model = quantized_model(bits=2, group_size=32)
    assert apply_precision_policy(model, Float32Policy.AUTO).describe() == "float32 (from 2-bit)"


def test_always_still_means_float32() -> None:
    model = quantized_model()
    assert apply_precision_policy(model, Float32Policy.ALWAYS).describe() == "float32 (from 4-bit)"
    assert native_layer_count(model) == 0


def test_repacked_layers_compute_what_the_stored_ones_do() -> None:
    if not kernels().repack_available(4):
        pytest.skip("the r16 kernels need AVX-512 VNNI")
    tokens = mx.array([[1, 2, 3, 200, 17, 99]])
    plain = quantized_model()  # MLX's kernel and lookup
    want_rows, want = plain.embed(tokens), plain(tokens)

    model = quantized_model()
    apply_precision_policy(model, Float32Policy.AUTO)
    assert is_repacked(model.proj) and is_repacked(model.embed)
    # The embedding's rows, looked up in the r16 layout, are MLX's rows exactly.
    assert mx.array_equal(model.embed(tokens), want_rows).item()
    # The tied head and the projection on the r16 kernel (x rounded to int8 per group).
    got = model(tokens)
    assert float(mx.abs(got - want).max()) <= 2e-2 * float(mx.abs(want).max())
    assert mx.array_equal(mx.argmax(got, -1), mx.argmax(want, -1)).item()
