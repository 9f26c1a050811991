"""q/k/v and gate/up stacked into one native matmul each: the model computes the same bits."""

from __future__ import annotations

import sys

import mlx.core as mx
import mlx.nn as nn
import pytest
from mlx.utils import tree_flatten
from mlx_lm.models import llama
from tiny_llama import greedy_logits, tiny_llama

from osaurus.engine.fused_projections import FusedPart, NativeFusedLinear, fuse_projections
from osaurus.engine.quantized_layers import use_native_kernels

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="the native kernel serves MLX's CPU backend"
)


def native_llama(bias: bool = False) -> llama.Model:
    model = tiny_llama(attention_bias=bias, mlp_bias=bias)
    nn.quantize(model, group_size=32, bits=4)
    mx.eval(model.parameters())
    assert use_native_kernels(model) > 0
    return model


def parameter_bytes(model: nn.Module) -> int:
    return sum(p.nbytes for _, p in tree_flatten(model.parameters()))


@pytest.mark.parametrize("bias", [False, True])
def test_fused_model_computes_the_same_bits(bias) -> None:
    model = native_llama(bias)
    prompt = mx.array([[5, 17, 42, 7, 99, 3], [1, 2, 3, 4, 5, 6]])
    before, size = greedy_logits(model, prompt), parameter_bytes(model)

    assert fuse_projections(model) == 2 * 2  # per layer: q/k/v and gate/up
    layer = model.model.layers[0]
    assert isinstance(layer.self_attn.q_proj, NativeFusedLinear)
    assert isinstance(layer.self_attn.v_proj, FusedPart)
    assert isinstance(layer.mlp.up_proj, FusedPart)
    assert parameter_bytes(model) == size  # stacked, not copied

    assert mx.array_equal(greedy_logits(model, prompt), before).item()


def test_parts_called_out_of_order_or_alone_are_right() -> None:
    model = native_llama()
    attn = model.model.layers[0].self_attn
    x = mx.random.normal((1, 3, 128), key=mx.random.key(1))
    want = [attn.q_proj(x), attn.k_proj(x), attn.v_proj(x)]
    mx.eval(want)
    fuse_projections(model)
    y = mx.random.normal((1, 3, 128), key=mx.random.key(2))
    got_v = attn.v_proj(x)  # first, before q: computes the product itself
    attn.q_proj(y)  # another input in between
    got_k = attn.k_proj(x)
    got_q = attn.q_proj(x)
    for got, expected in zip((got_q, got_k, got_v), want, strict=True):
        assert mx.array_equal(got, expected).item()


def test_a_second_fusion_changes_nothing() -> None:
    model = native_llama()
    fuse_projections(model)
    assert fuse_projections(model) == 0
