"""RMS norm and rotary embedding layers computed by osaurus' native CPU primitives.

On the CPU, MLX's `mx.fast.rms_norm` and `mx.fast.rope` expand into a dozen to thirty small ops
each (see native/fast_ops.h); in a small model that per-op cost is half of every decode step.
The subclasses below call the one-primitive versions instead, with the same arguments, and are
swapped in by class (as quantized_layers does) so the model's modules and weights stay as loaded.
Any other RoPE variant (scaled inputs, YaRN, ...) keeps MLX's path.
"""

from __future__ import annotations

import mlx.core as mx
import mlx.nn as nn
from mlx_lm.models.rope_utils import Llama3RoPE

from osaurus.engine.native import kernels


class NativeRMSNorm(nn.RMSNorm):
    def __call__(self, x: mx.array) -> mx.array:
        return kernels().rms_norm(x, self["weight"], self.eps)


class NativeRoPE(nn.RoPE):
    def __call__(self, x: mx.array, offset: int | mx.array = 0) -> mx.array:
        return kernels().rope(
            x,
            self.dims,
            traditional=self.traditional,
            base=self.base,
            scale=self.scale,
            offset=offset,
        )


class NativeLlama3RoPE(Llama3RoPE):
    def __call__(self, x: mx.array, offset: int | mx.array = 0) -> mx.array:
        return kernels().rope(
            x,
            self.dims,
            traditional=self.traditional,
            base=None,
            scale=1.0,
            offset=offset,
            freqs=self._freqs,
        )


_NATIVE_CLASS = {nn.RMSNorm: NativeRMSNorm, nn.RoPE: NativeRoPE, Llama3RoPE: NativeLlama3RoPE}


def use_native_fast_ops(model: nn.Module) -> int:
    """Swap the model's RMS norms and RoPEs for the native ones; returns how many were swapped
    (0 when the extension is unavailable). Call on the engine thread, CPU device."""
    if kernels() is None or mx.default_device() != mx.cpu:
        return 0
    swapped = 0
    for _, module in model.named_modules():
        native = _NATIVE_CLASS.get(type(module))  # exact classes: subclasses may compute otherwise
        if native is not None:
            module.__class__ = native
            swapped += 1
    return swapped
