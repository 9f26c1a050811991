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
        if not is_repacked(self):
            return super().__call__(x).astype(mx.float32)
        # Rows of an r16 matrix (native/kernels_r16.h): its 4-byte words are MLX's words of
        # the same row, 16 rows interleaved per tile; its scales and biases 16 rows per group.
        words = self["weight"].shape[1] // 4
        groups = self["scales"].shape[1]
        tile, row = (x // 16)[..., None], (x % 16)[..., None]
        packed = self["weight"].view(mx.uint32).reshape(-1)
        w = packed[(tile * words + mx.arange(words)) * 16 + row]
        at = (tile * groups + mx.arange(groups)) * 16 + row
        s, b = self["scales"].reshape(-1)[at], self["biases"].reshape(-1)[at]
        return mx.dequantize(w, s, b, self.group_size, self.bits).astype(mx.float32)

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


def is_repacked(module: Any) -> bool:
    """The module's weights are in the native kernel's r16 layout (uint8), not MLX's (uint32)."""
    return module["weight"].dtype == mx.uint8


def input_width(module: Any) -> int:
    """Columns of a (native) quantized layer's logical weight matrix: its input width."""
    per_element = 8 if is_repacked(module) else 32
    return module["weight"].shape[1] * per_element // module.bits


def repack_for_native_kernel(model: nn.Module) -> int:
    """Move the native layers' weights into the kernel's r16 layout (16 output rows to a
    vector: ~2-3x faster matmuls on small matrices and several rows of x, kernels_r16.h) where
    the kernel has it; returns how many moved. Same bytes in another order, so the model holds
    no more memory. Call last, after fuse_projections (which stacks MLX's layout)."""
    native = kernels()
    if native is None:
        return 0
    moved = 0
    for _, module in model.named_modules():
        if (
            isinstance(module, NativeQuantizedLinear | NativeQuantizedEmbedding)
            and native.repack_available(module.bits)
            and not is_repacked(module)
            and module["weight"].shape[0] % 16 == 0
        ):
            packed = native.repack(
                module["weight"], module["scales"], module["biases"], module.group_size, module.bits
            )
            module["weight"], module["scales"], module["biases"] = packed
            mx.eval(packed)
            moved += 1
    return moved


def native_layer_count(model: nn.Module) -> int:
    return sum(
        isinstance(m, NativeQuantizedLinear | NativeQuantizedEmbedding)
        for _, m in model.named_modules()
    )
