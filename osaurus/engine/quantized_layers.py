"""mlx-lm's quantized layers, computed by osaurus' native CPU kernel.

mlx-lm builds a quantized model from `nn.QuantizedLinear` (and `nn.QuantizedEmbedding`, whose
`as_linear` is the output head of models with tied embeddings). On the CPU we keep those
modules and their weights exactly as loaded and only change which kernel multiplies: the
classes below override the one method that calls `mx.quantized_matmul`.
"""

from __future__ import annotations

import logging
from typing import Any

import mlx.core as mx
import mlx.nn as nn

from osaurus.engine.native import kernels

log = logging.getLogger(__name__)

SUPPORTED_BITS = (4, 8)
SUPPORTED_GROUP_SIZES = (32, 64, 128)


def _native_matmul(module: Any, x: mx.array) -> mx.array:
    """x @ dequant(module.weight).T on the native kernel (the layer's own quantization)."""
    return kernels().quantized_matmul(
        x,
        module["weight"],
        module["scales"],
        module["biases"],
        transpose=True,
        group_size=module.group_size,
        bits=module.bits,
    )


class NativeQuantizedLinear(nn.QuantizedLinear):
    def __call__(self, x: mx.array) -> mx.array:
        y = _native_matmul(self, x)
        if "bias" in self:
            y = y + self["bias"]
        return y


class NativeQuantizedEmbedding(nn.QuantizedEmbedding):
    def as_linear(self, x: mx.array) -> mx.array:
        return _native_matmul(self, x)


def _supported(module: Any) -> bool:
    return (
        getattr(module, "mode", "affine") == "affine"
        and module.get("biases") is not None
        and module.bits in SUPPORTED_BITS
        and module.group_size in SUPPORTED_GROUP_SIZES
    )


def use_native_kernels(model: nn.Module) -> int:
    """Route the model's quantized matmuls through the native kernel; returns how many layers
    now use it (0 when the kernel is unavailable). Call on the engine thread, CPU device."""
    if kernels() is None:
        return 0
    swapped = 0
    for _, module in model.named_modules():
        # Reassigning __class__ keeps the module, its weights and its place in the tree as they
        # are (no copy, no re-registration); the subclasses add no state.
        if type(module) is nn.QuantizedLinear and _supported(module):
            module.__class__ = NativeQuantizedLinear
            swapped += 1
        elif type(module) is nn.QuantizedEmbedding and _supported(module):
            module.__class__ = NativeQuantizedEmbedding
            swapped += 1
    return swapped


def native_layer_count(model: nn.Module) -> int:
    return sum(
        isinstance(m, NativeQuantizedLinear | NativeQuantizedEmbedding)
        for _, m in model.named_modules()
    )
