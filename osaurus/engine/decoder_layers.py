"""Llama-family decoder layers computed by two native primitives each (native/decoder_layer.h).

With the native matmul, norms, RoPE and attention, a decode step of a small model is still
~27 MLX ops per layer (reshapes, transposes, splits, residual adds, the SwiGLU), each with a
fixed cost of ~5 µs on the CPU: about half of the 135M test model's step. The subclass below
computes a layer as two primitives around mlx-lm's KV cache, so every cache type (single,
batched, rotating), the prompt cache and the batch layout work as before. Where the cache is a
plain or batched one with room in its buffers, the first primitive writes the new keys and
values into them itself and the second attends over their valid part: mlx-lm's
update_and_fetch costs four more ops a layer and ~18 µs of Python (a decode step of the test
model 0.92x the time at one sequence, 0.94x at eight, in-process). The cache's bookkeeping
stays mlx-lm's; anything else (a new or full buffer, other caches) goes through
update_and_fetch. It is
swapped in by class, as the other native layers are, only where every part of the layer is
already native (quantized q/k/v and gate/up stacked by fused_projections, native norms and
RoPE, no biases), and it hands anything else at call time (other dtypes, a quantized KV cache,
an attention sink) to mlx-lm's own `__call__`.

Its keys and values, and so the KV cache that mlx-lm allocates in their dtype, may be float16
(the server's default, as llama.cpp's): half the memory of float32, for sessions and the prefix
cache too, at the same speed, since attention converts a tile of keys once for all the query
heads that read it (bench/attention.py). Queries and everything else stay float32.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import mlx.core as mx
import mlx.nn as nn
from mlx_lm.models import llama
from mlx_lm.models.cache import BatchKVCache, KVCache

from osaurus.engine import quantized_layers
from osaurus.engine.fast_layers import NativeLlama3RoPE, NativeRMSNorm, NativeRoPE
from osaurus.engine.fused_projections import FusedPart, NativeFusedLinear
from osaurus.engine.native import kernels, loaded_kernels
from osaurus.engine.options import KVCacheDtype
from osaurus.engine.quantized_layers import NativeQuantizedLinear

# A quantized matrix as the primitives take it: weight, scales, biases, group size, bits.
QuantizedWeight = tuple[mx.array, mx.array, mx.array, int, int]


def _weight(module: Any) -> QuantizedWeight:
    return (module["weight"], module["scales"], module["biases"], module.group_size, module.bits)


def _write_position(cache: Any, positions: int, kv_dtype: mx.Dtype) -> int | None:
    """Where the new positions go in the cache's buffers when attention_inputs can write them
    there itself: a plain or batched mlx-lm KV cache whose buffers have room. None sends the
    update through the cache's own update_and_fetch (a new or full buffer, other cache types)."""
    kind = type(cache)  # exact: a subclass may keep its buffers otherwise
    if kind is KVCache:
        at = cache.offset
    elif kind is BatchKVCache:
        at = cache._idx
    else:
        return None
    keys, values = cache.keys, cache.values
    if keys is None or keys.dtype != kv_dtype or values.dtype != kv_dtype:
        return None
    return at if at + positions <= keys.shape[2] else None


def _advance(cache: Any, positions: int) -> None:
    """The bookkeeping of update_and_fetch (mlx_lm/models/cache.py) after a write in place."""
    if type(cache) is KVCache:
        cache.offset += positions
    else:
        cache.offset = cache.offset + positions
        cache._idx += positions


def _rope_arguments(rope: nn.Module) -> dict[str, Any]:
    if isinstance(rope, NativeLlama3RoPE):
        return {"base": None, "rope_scale": 1.0, "freqs": rope._freqs}
    return {"base": rope.base, "rope_scale": rope.scale, "freqs": None}


@dataclass(frozen=True)
class _LayerArguments:
    """What a layer passes its two primitives besides x and the KV cache, gathered once at the
    swap: looked up through mlx.nn.Module's attribute access each step, they took ~40% of the
    Python time of a decode step (~40 µs a layer on our 2-core test machine). The arrays are
    the layer's own, not copies; no weight changes after loading."""

    norm_weight: mx.array
    eps: float
    qkv: QuantizedWeight
    heads: dict[str, Any]  # n_heads, n_kv_heads, head_dim, rope_dims, traditional
    rope: dict[str, Any]  # base, rope_scale, freqs
    scale: float
    o: QuantizedWeight
    post_norm_weight: mx.array
    post_eps: float
    gate_up: QuantizedWeight
    down: QuantizedWeight
    repacked: bool  # every matrix in the r16 layout, whose kernels beat the BLAS at any length

    @classmethod
    def of(cls, block: Any) -> _LayerArguments:
        attn, mlp = block.self_attn, block.mlp
        matrices = (attn.q_proj, attn.o_proj, mlp.gate_proj, mlp.down_proj)
        return cls(
            norm_weight=block.input_layernorm["weight"],
            eps=block.input_layernorm.eps,
            qkv=_weight(attn.q_proj),
            heads={
                "n_heads": attn.n_heads,
                "n_kv_heads": attn.n_kv_heads,
                "head_dim": attn.head_dim,
                "rope_dims": attn.rope.dims,
                "traditional": attn.rope.traditional,
            },
            rope=_rope_arguments(attn.rope),
            scale=attn.scale,
            o=_weight(attn.o_proj),
            post_norm_weight=block.post_attention_layernorm["weight"],
            post_eps=block.post_attention_layernorm.eps,
            gate_up=_weight(mlp.gate_proj),
            down=_weight(mlp.down_proj),
            repacked=all(quantized_layers.is_repacked(m) for m in matrices),
        )


class NativeLlamaBlock(llama.TransformerBlock):
    kv_dtype: mx.Dtype = mx.float32  # set per layer by use_native_decoder_layers
    native: _LayerArguments  # likewise

    def __call__(self, x: mx.array, mask: Any = None, cache: Any = None) -> mx.array:
        causal = isinstance(mask, str) and mask == "causal"
        k = loaded_kernels()
        blas_rows = k.blas_rows()
        a = self.native
        if (
            x.dtype != mx.float32
            or x.ndim != 3
            or hasattr(cache, "bits")  # a quantized KV cache
            or not (mask is None or causal or isinstance(mask, mx.array))
            # a matrix in MLX's layout takes the BLAS from blas_rows() rows: mlx-lm's layer
            or (blas_rows and x.shape[1] >= blas_rows and not a.repacked)
        ):
            return super().__call__(x, mask, cache)
        at = None if cache is None else _write_position(cache, x.shape[1], self.kv_dtype)
        q, keys, values = k.attention_inputs(
            x,
            a.norm_weight,
            a.eps,
            a.qkv,
            offset=cache.offset if cache is not None else 0,
            kernel=quantized_layers.KERNEL,
            kv_dtype=self.kv_dtype,
            cache_keys=None if at is None else cache.keys,
            cache_values=None if at is None else cache.values,
            write_pos=at or 0,
            **a.heads,
            **a.rope,
        )
        kv_length = 0
        if at is not None:
            # The old buffers are dropped before evaluation, so that they can be written in place.
            cache.keys, cache.values = keys, values
            _advance(cache, x.shape[1])
            kv_length = at + x.shape[1]
        elif cache is not None:
            keys, values = cache.update_and_fetch(keys, values)
        return k.attention_output_mlp(
            x,
            q,
            keys,
            values,
            scale=a.scale,
            causal=causal,
            mask=None if causal else mask,
            o=a.o,
            norm_weight=a.post_norm_weight,
            eps=a.post_eps,
            gate_up=a.gate_up,
            down=a.down,
            kernel=quantized_layers.KERNEL,
            kv_length=kv_length,
        )


def _fusable(block: Any) -> bool:
    """Every part of the layer is native, and computes what the primitives compute."""
    if type(block) is not llama.TransformerBlock:  # exact: a subclass may compute otherwise
        return False
    attn, mlp = block.self_attn, block.mlp
    if type(attn) is not llama.Attention or type(mlp) is not llama.MLP:
        return False
    q, o, gate, down = attn.q_proj, attn.o_proj, mlp.gate_proj, mlp.down_proj
    head_rows = attn.n_heads * attn.head_dim
    kv_rows = (attn.n_kv_heads or 0) * attn.head_dim  # typed optional in ModelArgs
    return (
        type(q) is NativeFusedLinear
        and isinstance(attn.k_proj, FusedPart)
        and isinstance(attn.v_proj, FusedPart)
        and q._product.offsets == [head_rows, head_rows + kv_rows]
        and type(gate) is NativeFusedLinear
        and isinstance(mlp.up_proj, FusedPart)
        and gate._product.offsets == [gate.weight.shape[0] // 2]
        and type(o) is NativeQuantizedLinear
        and type(down) is NativeQuantizedLinear
        and not any("bias" in m for m in (q, o, gate, down))
        and all(
            type(n) is NativeRMSNorm and n["weight"].dtype == mx.float32
            for n in (block.input_layernorm, block.post_attention_layernorm)
        )
        and type(attn.rope) in (NativeRoPE, NativeLlama3RoPE)
    )


def use_native_decoder_layers(
    model: nn.Module, kv_cache_dtype: KVCacheDtype = KVCacheDtype.FLOAT32
) -> int:
    """Swap the model's llama decoder layers whose parts are all native for NativeLlamaBlock,
    with their KV cache in kv_cache_dtype; returns how many were swapped. Call after the
    native layers and fused projections are in, on the engine thread, CPU device."""
    if kernels() is None or mx.default_device() != mx.cpu:
        return 0
    swapped = 0
    for _, module in model.named_modules():
        if _fusable(module):
            module.__class__ = NativeLlamaBlock
            module.kv_dtype = getattr(mx, kv_cache_dtype.value)
            module.native = _LayerArguments.of(module)
            swapped += 1
    return swapped
