"""mlx-lm's quantized layers, computed by osaurus' native CPU kernel.

mlx-lm builds a quantized model from `nn.QuantizedLinear` (and `nn.QuantizedEmbedding`, whose
`as_linear` is the output head of models with tied embeddings). On the CPU we keep those
modules and their weights exactly as loaded and only change which kernel multiplies: the
classes below override the one method that calls `mx.quantized_matmul`.

Between those matmuls the model computes in float32 on the CPU (`compute_in_float32`): MLX's
CPU kernels for float16/bfloat16 (elementwise ops, attention) convert every value in scalar
code, and on a 1B float16 model they took a third of each decode step.
"""

from __future__ import annotations

import logging
from typing import Any

import mlx.core as mx
import mlx.nn as nn

from osaurus.engine.native import kernels, loaded_kernels

log = logging.getLogger(__name__)

SUPPORTED_BITS = (4, 8)
SUPPORTED_GROUP_SIZES = (32, 64, 128)

# The kernel's mode (see quantized.h): "auto" rounds x to int8 per weight group for the
# matmul, as llama.cpp does; "float" keeps x in float32 (exact to float32 rounding, ~2x
# slower at batch 1). Tests and bench/ set it; the server uses "auto".
KERNEL = "auto"


def _native_matmul(module: Any, x: mx.array) -> mx.array:
    """x @ dequant(module.weight).T on the native kernel (the layer's own quantization)."""
    return loaded_kernels().quantized_matmul(
        x,
        module["weight"],
        module["scales"],
        module["biases"],
        transpose=True,
        group_size=module.group_size,
        bits=module.bits,
        kernel=KERNEL,
    )


class NativeQuantizedLinear(nn.QuantizedLinear):
    def __call__(self, x: mx.array) -> mx.array:
        y = _native_matmul(self, x)
        if "bias" in self:
            y = y + self["bias"]
        return y


class NativeQuantizedEmbedding(nn.QuantizedEmbedding):
    def __call__(self, x: mx.array) -> mx.array:
        # The hidden state starts here: in float32, so the whole model computes in float32.
        return super().__call__(x).astype(mx.float32)

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


def compute_in_float32(model: nn.Module) -> None:
    """Cast the float16/bfloat16 arrays that are not quantized storage (norm weights, linear
    biases) to float32, so that activations stay float32 between the native matmuls. Quantized
    weights, scales and biases stay exactly as stored."""
    stored = ("weight", "scales", "biases")
    for _, module in model.named_modules():
        native = isinstance(module, NativeQuantizedLinear | NativeQuantizedEmbedding)
        for name, value in module.items():
            if native and name in stored:
                continue
            if isinstance(value, mx.array) and value.dtype in (mx.float16, mx.bfloat16):
                module[name] = value.astype(mx.float32)


def native_layer_count(model: nn.Module) -> int:
    return sum(
        isinstance(m, NativeQuantizedLinear | NativeQuantizedEmbedding)
        for _, m in model.named_modules()
    )
