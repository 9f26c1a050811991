"""RMS norm, rotary embedding and attention computed by osaurus' native CPU primitives.

On the CPU, MLX's `mx.fast.rms_norm`, `mx.fast.rope` and `mx.fast.scaled_dot_product_attention`
expand into a dozen to thirty small ops each (see native/fast_ops.h, native/attention.h); in a
small model that per-op cost is half of every decode step. The subclasses below call the
one-primitive versions instead, with the same arguments, and are swapped in by class (as
quantized_layers does) so the model's modules and weights stay as loaded. Any other RoPE
variant (scaled inputs, YaRN, ...) keeps MLX's path.

Attention is not a module in mlx-lm but a function, `scaled_dot_product_attention`, that each
model file imports from `mlx_lm.models.base`; so the model files' name for it is what gets
replaced, by a wrapper that takes the native primitive in float32 (decoding, prompt chunks,
prompt-lookup verification) and calls mlx-lm's own function for everything else (quantized KV
caches, attention sinks, other dtypes).
"""

from __future__ import annotations

import importlib
import sys
import types
from collections.abc import Callable
from typing import Any

import mlx.core as mx
import mlx.nn as nn
from mlx_lm.models.rope_utils import Llama3RoPE

from osaurus.engine.native import kernels, loaded_kernels


class NativeRMSNorm(nn.RMSNorm):
    def __call__(self, x: mx.array) -> mx.array:
        return loaded_kernels().rms_norm(x, self["weight"], self.eps)


class NativeRoPE(nn.RoPE):
    def __call__(self, x: mx.array, offset: int | mx.array = 0) -> mx.array:
        return loaded_kernels().rope(
            x,
            self.dims,
            traditional=self.traditional,
            base=self.base,
            scale=self.scale,
            offset=offset,
        )


class NativeLlama3RoPE(Llama3RoPE):
    def __call__(self, x: mx.array, offset: int | mx.array = 0) -> mx.array:
        return loaded_kernels().rope(
            x,
            self.dims,
            traditional=self.traditional,
            base=None,
            scale=1.0,
            offset=offset,
            freqs=self._freqs,
        )


_NATIVE_CLASS: dict[type, type] = {
    nn.RMSNorm: NativeRMSNorm,
    nn.RoPE: NativeRoPE,
    Llama3RoPE: NativeLlama3RoPE,
}


def native_attention(original: Callable) -> Callable:
    """mlx-lm's `scaled_dot_product_attention`, on the native primitive where it applies."""

    def scaled_dot_product_attention(queries, keys, values, cache, scale, mask, sinks=None):
        causal = isinstance(mask, str) and mask == "causal"
        if (
            sinks is None
            and not hasattr(cache, "bits")  # a quantized KV cache
            and queries.dtype == mx.float32
            and keys.dtype == values.dtype
            and keys.dtype in (mx.float32, mx.float16)  # float16: a float16 KV cache
            and (mask is None or causal or isinstance(mask, mx.array))
            and mx.default_device() == mx.cpu
        ):
            return loaded_kernels().attention(
                queries, keys, values, scale=scale, causal=causal, mask=None if causal else mask
            )
        return original(queries, keys, values, cache, scale, mask, sinks)

    # Marks the wrapper (so a model file is not wrapped twice) and keeps what it wraps.
    scaled_dot_product_attention.osaurus_original = original  # type: ignore[attr-defined]
    return scaled_dot_product_attention


def _use_native_attention(model: nn.Module) -> int:
    """Replace the attention function in the files that define the model's modules."""
    replaced = 0
    for name in {type(m).__module__ for _, m in model.named_modules()}:
        source = sys.modules.get(name)
        function = getattr(source, "scaled_dot_product_attention", None)
        if source is not None and callable(function) and not hasattr(function, "osaurus_original"):
            source.scaled_dot_product_attention = native_attention(function)  # type: ignore[attr-defined]
            replaced += 1
    return replaced


def use_native_fast_ops(model: nn.Module) -> int:
    """Swap the model's RMS norms and RoPEs for the native ones, and its attention function;
    returns how many were swapped (0 when the extension is unavailable). Call on the engine
    thread, CPU device."""
    if kernels() is None or mx.default_device() != mx.cpu:
        return 0
    swapped = 0
    for _, module in model.named_modules():
        native = _NATIVE_CLASS.get(type(module))  # exact classes: subclasses may compute otherwise
        if native is not None:
            module.__class__ = native
            swapped += 1
    return swapped + _use_native_attention(model)


class _GenerateMlx(types.ModuleType):
    """mlx.core as mlx-lm's generate module sees it once use_native_logsumexp ran: every name
    is MLX's, except that logsumexp over the last axis of float32 on the CPU is the native
    primitive. mlx-lm normalizes each decode step's logits with it, and MLX's CPU exp is scalar:
    6.5 ms a step for 8 sequences of a 49k vocabulary against ~0.6 ms (native/fast_ops.h)."""

    def __getattr__(self, name: str) -> Any:
        return getattr(mx, name)

    @staticmethod
    def logsumexp(a: mx.array, axis: Any = None, keepdims: bool = False, **kwargs: Any) -> Any:
        last = axis in (-1, a.ndim - 1) or (axis is None and a.ndim == 1)
        if (
            last
            and keepdims
            and not kwargs
            and a.dtype == mx.float32
            and a.size
            and mx.default_device() == mx.cpu
        ):
            return loaded_kernels().logsumexp(a)
        return mx.logsumexp(a, axis=axis, keepdims=keepdims, **kwargs)


def use_native_logsumexp() -> bool:
    """Give mlx-lm's generate module the native logsumexp (process-wide, once); returns whether
    it was swapped now. Elsewhere MLX's own stays."""
    # The module, not the function mlx_lm exports under the same name.
    generate = importlib.import_module("mlx_lm.generate")
    if kernels() is None or isinstance(generate.mx, _GenerateMlx):
        return False
    generate.mx = _GenerateMlx("mlx.core")  # type: ignore[attr-defined]
    return True
