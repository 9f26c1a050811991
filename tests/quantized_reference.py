"""MLX's reference for osaurus' quantized-matmul kernels, shared by the kernel tests: random
quantized matrices, and what the int8 kernels compute (x rounded per group, as llama.cpp does)."""

from __future__ import annotations

import mlx.core as mx

KERNELS = ("auto", "float", "int8", "int8-avx2", "generic")
EXACT_KERNELS = ("float", "generic")  # x stays float32 whatever the number of rows


def quantized(rows: int, cols: int, bits: int, group_size: int, dtype=mx.float32, seed=0):
    w = mx.random.normal((rows, cols), key=mx.random.key(seed)).astype(dtype)
    return mx.quantize(w, group_size=group_size, bits=bits)


def assert_close(got: mx.array, want: mx.array, rtol: float = 1e-5) -> None:
    assert got.shape == want.shape and got.dtype == want.dtype
    scale = max(float(mx.abs(want.astype(mx.float32)).max()), 1e-6)
    err = float(mx.abs(got.astype(mx.float32) - want.astype(mx.float32)).max())
    assert err <= rtol * scale, f"max error {err:.3g} vs reference scale {scale:.3g}"


def rounded_to_int8(x: mx.array, group_size: int) -> mx.array:
    """x as the int8 kernels see it: per group, d = max|x| / 127 and x ~ d * round(x / d)."""
    groups = x.reshape(*x.shape[:-1], -1, group_size)
    d = mx.abs(groups).max(axis=-1, keepdims=True) / 127
    return (mx.round(groups / mx.where(d > 0, d, 1)) * d).reshape(x.shape)


def int8_reference(x, w, scales, biases, group_size: int, bits: int) -> mx.array:
    """What the int8 kernels compute: MLX's product of the rounded x with w (float32)."""
    s, b = scales.astype(mx.float32), biases.astype(mx.float32)
    xr = rounded_to_int8(x.astype(mx.float32), group_size)
    return mx.quantized_matmul(xr, w, s, b, True, group_size, bits)


def int8_in_use(native, kernel: str, rows: int, r16_kernel: bool = False) -> bool:
    """Whether `kernel` rounds x to int8 for `rows` rows; r16_kernel: w is repacked and an r16
    kernel for its bits is built here, which "auto" takes at every row count."""
    if native.simd() == "portable":
        return False
    blas_rows = native.blas_rows()  # from which "auto" goes to the BLAS (0: never)
    auto_int8 = r16_kernel or not 0 < blas_rows <= rows
    return kernel in ("int8", "int8-avx2") or (kernel == "auto" and auto_int8)
