"""Projections of one input computed as one quantized matmul on the CPU (q/k/v, gate/up).

A decoder layer multiplies the same hidden state by q, k and v, and again by gate and up: five
small matmuls, each paying MLX's per-op cost, the kernel's set-up (x rounded to int8) and a
cold start on its weights. Stacking the weights of each set (same input width, same
quantization) makes one matmul whose output is split. The native kernels compute every output
row on its own, so the results are the same to the bit. Measured on the 135M test model: ~1 ms
of a ~12 ms decode step.

mlx-lm's modules call the projections by name, in order (`self.q_proj(x)`, `self.k_proj(x)`,
`self.v_proj(x)`). So the first one computes the stacked product and keeps its parts for the
others, which find them by the input they are called with. Called with another input, or
first, a part computes the product itself, so any calling order stays correct.
"""

from __future__ import annotations

from typing import Any

import mlx.core as mx
import mlx.nn as nn

from osaurus.engine.quantized_layers import NativeQuantizedLinear

FUSED_SETS = (("q_proj", "k_proj", "v_proj"), ("gate_proj", "up_proj"))


class _Product:
    """The last stacked product of a set, shared by its parts. Not an nn.Module, so that it
    stays out of the model's parameter tree."""

    def __init__(self, owner: NativeFusedLinear, offsets: list[int]):
        self.owner = owner
        self.offsets = offsets  # where each part after the first starts in the output
        self.x: mx.array | None = None
        self.parts: list[mx.array] = []


class NativeFusedLinear(NativeQuantizedLinear):
    """The first projection of a set: holds the stacked weights, returns its own part."""

    _product: _Product

    def __call__(self, x: mx.array) -> mx.array:
        parts: list[mx.array] = mx.split(super().__call__(x), self._product.offsets, axis=-1)  # type: ignore[assignment]
        self._product.x, self._product.parts = x, parts
        return parts[0]


class FusedPart(nn.Module):
    """Another projection of the set: its slice of the stacked product."""

    def __init__(self, product: _Product, index: int, last: bool):
        super().__init__()
        self._product, self._index, self._last = product, index, last

    def __call__(self, x: mx.array) -> mx.array:
        product = self._product
        if product.x is not x:
            product.owner(x)
        part = product.parts[self._index]
        if self._last:  # let go of the activations (a prompt chunk's are ~0.5 MB per layer)
            product.x, product.parts = None, []
        return part


def _fusable(modules: list[Any]) -> bool:
    first = modules[0]
    return all(
        type(m) is NativeQuantizedLinear
        and (m.bits, m.group_size, m.weight.shape[1], m.scales.dtype)
        == (first.bits, first.group_size, first.weight.shape[1], first.scales.dtype)
        and ("bias" in m) == ("bias" in first)
        for m in modules
    )


def fuse_projections(model: nn.Module) -> int:
    """Stack each q/k/v and gate/up set of native quantized layers into one; returns how many
    sets were fused. Call after the layers moved to the native kernel, on the engine thread."""
    fused = 0
    for _, parent in model.named_modules():
        for names in FUSED_SETS:
            modules = [parent.get(name) for name in names]
            if any(m is None for m in modules) or not _fusable(modules):
                continue
            first = modules[0]
            sizes = [m.weight.shape[0] for m in modules]
            for key in ("weight", "scales", "biases", "bias"):
                if key in first:
                    first[key] = mx.concatenate([m[key] for m in modules], axis=0)
            first.__class__ = NativeFusedLinear
            offsets = [sum(sizes[: i + 1]) for i in range(len(sizes) - 1)]
            first._product = _Product(first, offsets)
            for i, name in enumerate(names[1:], start=1):
                parent[name] = FusedPart(first._product, i, last=i == len(names) - 1)
            mx.eval(first.parameters())
            fused += 1
    return fused
