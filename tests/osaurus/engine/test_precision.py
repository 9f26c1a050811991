"""The CPU float32 policy: when a model is dequantized, and what it computes in afterwards."""

from __future__ import annotations

import mlx.core as mx
import mlx.nn as nn
import psutil
import pytest

from osaurus.engine.precision import (
    Float32Policy,
    apply_precision_policy,
    should_use_float32,
)

SMALL = 135_000_000  # the test model
HUGE = psutil.virtual_memory().total  # its float32 copy would take 4x the RAM


@pytest.mark.parametrize(
    ("n_params", "policy", "on_cpu", "native", "expected"),
    [
        (SMALL, Float32Policy.AUTO, True, False, True),  # half precision, or no native kernel
        (SMALL, Float32Policy.AUTO, True, True, False),  # quantized, on osaurus' kernel
        (SMALL, Float32Policy.AUTO, False, False, False),  # a GPU keeps what is stored
        (HUGE, Float32Policy.AUTO, True, False, False),  # does not fit
        (HUGE, Float32Policy.ALWAYS, True, True, True),
        (SMALL, Float32Policy.ALWAYS, False, False, True),
        (SMALL, Float32Policy.NEVER, True, False, False),
    ],
)
def test_when_a_model_goes_float32(n_params, policy, on_cpu, native, expected) -> None:
    assert should_use_float32(n_params, policy, on_cpu, native) is expected


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(64, 64)
        self.proj = nn.Linear(64, 64)

    def __call__(self, x):
        return self.proj(self.embed(x))


def test_a_quantized_model_is_dequantized_faithfully() -> None:
    model = Tiny()
    nn.quantize(model, group_size=32, bits=4)
    x = mx.array([[1, 2, 3]])
    before = model(x)

    precision = apply_precision_policy(model, Float32Policy.ALWAYS)

    assert precision.describe() == "float32 (from 4-bit)"
    assert isinstance(model.proj, nn.Linear) and model.proj.weight.dtype == mx.float32
    # Dequantizing is exact: the float32 model computes what the 4-bit one did.
    assert mx.allclose(model(x), before.astype(mx.float32), atol=1e-3).item()


def test_never_keeps_the_stored_weights() -> None:
    model = Tiny()
    model.set_dtype(mx.float16)
    assert apply_precision_policy(model, Float32Policy.NEVER).describe() == "float16"
    assert model.proj.weight.dtype == mx.float16
