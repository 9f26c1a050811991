"""osaurus' native CPU kernels against MLX's reference ops (mx.quantized_matmul, mx.dequantize).

Every kernel (the SIMD one, the portable one, and "auto", which sends many rows through
dequantize + the BLAS) must compute what MLX computes, to float32 rounding: they accumulate in
float32 as MLX does, only in another order.
"""

from __future__ import annotations

import sys

import mlx.core as mx
import pytest

from osaurus.engine.native import kernels, status

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="the native kernel serves MLX's CPU backend"
)

KERNELS = ("auto", "simd", "generic")


@pytest.fixture(scope="module")
def native():
    module = kernels()
    # `make setup` builds the extension; on Linux a missing kernel is a failure, not a skip.
    assert module is not None, status().detail
    return module


def quantized(rows: int, cols: int, bits: int, group_size: int, dtype=mx.float32, seed=0):
    w = mx.random.normal((rows, cols), key=mx.random.key(seed)).astype(dtype)
    return mx.quantize(w, group_size=group_size, bits=bits)


def assert_close(got: mx.array, want: mx.array, rtol: float = 1e-5) -> None:
    assert got.shape == want.shape and got.dtype == want.dtype
    scale = max(float(mx.abs(want.astype(mx.float32)).max()), 1e-6)
    err = float(mx.abs(got.astype(mx.float32) - want.astype(mx.float32)).max())
    assert err <= rtol * scale, f"max error {err:.3g} vs reference scale {scale:.3g}"


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("bits", [4, 8])
@pytest.mark.parametrize("group_size", [32, 64, 128])
@pytest.mark.parametrize("rows", [1, 3, 8, 64])
def test_transposed_matches_mlx(native, kernel, bits, group_size, rows) -> None:
    # Odd output sizes: 67 rows leave a remainder for every blocking in the kernels.
    w, scales, biases = quantized(67, 3 * group_size, bits, group_size)
    x = mx.random.normal((rows, 3 * group_size), key=mx.random.key(1))
    want = mx.quantized_matmul(x, w, scales, biases, True, group_size, bits)
    got = native.quantized_matmul(x, w, scales, biases, True, group_size, bits, kernel=kernel)
    assert_close(got, want)


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("bits", [4, 8])
@pytest.mark.parametrize("rows", [1, 3, 64])
def test_not_transposed_matches_mlx(native, kernel, bits, rows) -> None:
    # w is K x N, quantized along N: x @ dequant(w).
    w, scales, biases = quantized(96, 2 * 64, bits, 64)
    x = mx.random.normal((rows, 96), key=mx.random.key(2))
    want = mx.quantized_matmul(x, w, scales, biases, False, 64, bits)
    got = native.quantized_matmul(x, w, scales, biases, False, 64, bits, kernel=kernel)
    assert_close(got, want)


@pytest.mark.parametrize("dtype", [mx.float16, mx.bfloat16])
def test_half_precision_inputs_and_scales(native, dtype) -> None:
    # A model stored in float16/bfloat16 has scales, biases and activations of that type.
    # MLX's CPU kernel accumulates in that type (bfloat16: errors of ~3% here); ours
    # accumulates in float32 and rounds once, so both are held to the float32 product.
    w, scales, biases = quantized(40, 256, 4, 32, dtype=dtype)
    x = mx.random.normal((5, 256), key=mx.random.key(3)).astype(dtype)
    f32 = mx.float32
    truth = x.astype(f32) @ mx.dequantize(w, scales.astype(f32), biases.astype(f32), 32, 4).T
    mlx_error = mx.abs(mx.quantized_matmul(x, w, scales, biases, True, 32, 4) - truth).max()
    got = native.quantized_matmul(x, w, scales, biases, True, 32, 4)
    assert got.dtype == dtype
    error = mx.abs(got.astype(f32) - truth).max()
    # Rounding the output to 8 (bfloat16) or 11 (float16) significant bits, no more.
    assert float(error) <= float(mx.abs(truth).max()) * 2.0**-8
    assert float(error) <= float(mlx_error)


def test_batched_and_strided_x(native) -> None:
    w, scales, biases = quantized(48, 128, 4, 32)
    x = mx.random.normal((2, 3, 128), key=mx.random.key(4))
    want = mx.quantized_matmul(x, w, scales, biases, True, 32, 4)
    assert_close(native.quantized_matmul(x, w, scales, biases, True, 32, 4), want)
    xt = mx.random.normal((128, 6), key=mx.random.key(5)).T  # a transposed view, not contiguous
    want = mx.quantized_matmul(xt, w, scales, biases, True, 32, 4)
    assert_close(native.quantized_matmul(xt, w, scales, biases, True, 32, 4), want)


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize(("bits", "group_size"), [(4, 32), (4, 128), (8, 64)])
def test_dequantize_matches_mlx(native, kernel, bits, group_size) -> None:
    w, scales, biases = quantized(33, 2 * group_size, bits, group_size)
    want = mx.dequantize(w, scales, biases, group_size, bits)
    got = native.dequantize(w, scales, biases, group_size, bits, kernel=kernel)
    assert_close(got, want, rtol=1e-6)


def test_large_matrix_over_threads(native) -> None:
    # Big enough to be split over every core: the split must cover every output row once.
    w, scales, biases = quantized(4099, 512, 4, 64)
    for rows in (1, 5):
        x = mx.random.normal((rows, 512), key=mx.random.key(6))
        want = mx.quantized_matmul(x, w, scales, biases, True, 64, 4)
        assert_close(native.quantized_matmul(x, w, scales, biases, True, 64, 4), want)


def test_bad_arguments_are_named(native) -> None:
    w, scales, biases = quantized(16, 64, 4, 32)
    x = mx.ones((2, 64))
    cases = [
        (dict(bits=3), "bits must be 4 or 8"),
        (dict(group_size=16), "group_size must be 32, 64 or 128"),
        (
            dict(x=mx.ones((2, 65))),
            "x (2, 65) has 65 columns but w (16, 8) is a 16 x 64 matrix at 4 bits, so x needs 64",
        ),
        (dict(x=mx.ones((2, 64), dtype=mx.int32)), "x must be float32, float16 or bfloat16"),
        (dict(w=w.astype(mx.int32)), "w must be uint32"),
        (dict(scales=scales[:, :1]), "do not fit w"),
        (dict(biases=biases.astype(mx.float16)), "must share a float dtype"),
        (dict(kernel="fast"), "kernel must be 'auto', 'simd' or 'generic'"),
    ]
    for change, message in cases:
        args = dict(x=x, w=w, scales=scales, biases=biases, group_size=32, bits=4) | change
        kernel = args.pop("kernel", "auto")
        with pytest.raises(ValueError, match=r"^(quantized_matmul|osaurus kernels): ") as info:
            native.quantized_matmul(**args, kernel=kernel)
        assert message in str(info.value)
