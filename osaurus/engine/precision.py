"""What the weights compute in once loaded: quantized on osaurus' kernel, or float32.

On MLX's CPU backend a float32 matmul runs on the BLAS (OpenBLAS when preloaded), while quantized
and half-precision matmuls run on MLX's own slow kernels. Quantized models whose layout osaurus'
native kernel takes (affine, 4 or 8 bits, group 32/64/128) stay quantized on the CPU and run on
that kernel (osaurus.engine.native): a fraction of the memory, and faster than float32. Others
(half-precision weights, or any quantized model when the kernel is not built) are dequantized
to float32 when the copy fits comfortably in memory. The policy is a setting: auto, always
(float32 whatever the model), never (keep what is stored). On a GPU, auto keeps the weights as
they are: Metal's quantized kernels are fast and memory bandwidth is what counts there.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any

import mlx.core as mx
import psutil
from mlx_lm.utils import dequantize_model, get_total_parameters

from osaurus.engine.fused_projections import fuse_projections
from osaurus.engine.native import kernels, loaded_kernels
from osaurus.engine.options import Float32Policy
from osaurus.engine.quantized_layers import (
    SUPPORTED_BITS,
    SUPPORTED_GROUP_SIZES,
    compute_in_float32,
    repack_for_native_kernel,
    use_native_kernels,
)

log = logging.getLogger(__name__)

# auto: the float32 copy may take at most this share of RAM, and of the memory free at load.
_RAM_SHARE = 0.25
_AVAILABLE_SHARE = 0.5


@dataclass(frozen=True)
class Precision:
    """How a loaded model computes: `dtype` is "float32", "float16", "bfloat16" or "4-bit" etc.;
    `converted_from` says the server changed it from what is on disk (and from what); `kernel`
    names the kernel of a quantized model's matmuls on the CPU ("osaurus avx2" or "mlx")."""

    dtype: str
    converted_from: str | None = None
    kernel: str | None = None

    def describe(self) -> str:
        if self.converted_from:
            return f"{self.dtype} (from {self.converted_from})"
        return f"{self.dtype} ({self.kernel} kernel)" if self.kernel else self.dtype


def stored_precision(model: Any) -> str:
    """The precision of the weights as loaded from disk (the first matmul's)."""
    for _, module in model.named_modules():
        if hasattr(module, "bits") and hasattr(module, "scales"):
            return f"{module.bits}-bit"
    for _, module in model.named_modules():
        weight = getattr(module, "weight", None)
        if isinstance(weight, mx.array) and weight.ndim == 2:
            return str(weight.dtype).removeprefix("mlx.core.")
    return "unknown"


def native_kernel_fits(bits: int | None, group_size: int | None) -> bool:
    """Whether osaurus' CPU kernel is built here and takes this quantization."""
    return kernels() is not None and bits in SUPPORTED_BITS and group_size in SUPPORTED_GROUP_SIZES


def _first_quantized(model: Any) -> Any:
    return next((m for _, m in model.named_modules() if hasattr(m, "scales")), None)


def should_use_float32(
    n_params: int, policy: Float32Policy, on_cpu: bool, native_kernel: bool = False
) -> bool:
    """`native_kernel`: the model is quantized in a layout osaurus' CPU kernel runs."""
    if policy is Float32Policy.ALWAYS:
        return True
    if policy is Float32Policy.NEVER or not on_cpu or native_kernel:
        return False
    needed = 4 * n_params
    memory = psutil.virtual_memory()
    fits = needed <= _RAM_SHARE * memory.total and needed <= _AVAILABLE_SHARE * memory.available
    if not fits:
        log.info("keeping stored weights: a float32 copy (%.1f GB) would not fit", needed / 1e9)
    return fits


def apply_precision_policy(model: Any, policy: Float32Policy) -> Precision:
    """Convert `model` in place to float32 when the policy says so; return what it computes in."""
    stored = stored_precision(model)
    if stored == "float32":
        return Precision("float32")
    on_cpu = mx.default_device() == mx.cpu
    quantized = _first_quantized(model)
    native = quantized is not None and native_kernel_fits(quantized.bits, quantized.group_size)
    if not should_use_float32(get_total_parameters(model), policy, on_cpu, native):
        if quantized is None or not on_cpu:
            return Precision(stored)
        if native and use_native_kernels(model):
            compute_in_float32(model)
            fuse_projections(model)
            repack_for_native_kernel(model)
            return Precision(stored, kernel=f"osaurus {loaded_kernels().simd()}")
        return Precision(stored, kernel="mlx")
    dequantize_model(model)  # mlx-lm's: quantized layers become plain Linear/Embedding
    model.set_dtype(mx.float32)
    mx.eval(model.parameters())
    return Precision("float32", converted_from=stored)


def estimate_memory(info: Any, policy: Float32Policy) -> int:
    """Memory a model will take once loaded, before loading it (to make room first): its size on
    disk, times the float32 expansion when the policy would apply on this device."""
    size = info.size_bytes
    match = re.match(r"(\d+)-bit \(group (\d+)\)", info.quantization)  # or "none": floats
    # A quantized weight also carries a float16 scale and bias per group.
    bits = int(match[1]) + 32 / int(match[2]) if match else 16
    on_cpu = mx.default_device() == mx.cpu
    expanded = int(size * 32 / bits)
    native = match is not None and native_kernel_fits(int(match[1]), int(match[2]))
    if policy is Float32Policy.ALWAYS or (
        policy is Float32Policy.AUTO and should_use_float32(expanded // 4, policy, on_cpu, native)
    ):
        return expanded
    return size
