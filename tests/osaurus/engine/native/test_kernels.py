"""osaurus' native CPU kernels against MLX's reference ops (mx.quantized_matmul, mx.dequantize).

The float kernels (the SIMD one, the portable one, and "auto" for many rows, which goes through
dequantize + the BLAS) must compute what MLX computes, to float32 rounding: they accumulate in
float32 as MLX does, only in another order. The int8 kernels ("int8", and "auto" for few rows)
round x to int8 per weight group first, as llama.cpp does; given that rounding, which the
reference below applies with MLX ops, they too must match MLX to float32 rounding.
"""

from __future__ import annotations

import sys

import mlx.core as mx
import pytest
from quantized_reference import (
    EXACT_KERNELS,
    KERNELS,
    assert_close,
    int8_in_use,
    int8_reference,
    quantized,
)

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="the native kernel serves MLX's CPU backend"
)


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("bits", [4, 8])
@pytest.mark.parametrize("group_size", [32, 64, 128])
@pytest.mark.parametrize("rows", [1, 3, 8, 13, 64])
@pytest.mark.parametrize("groups", [9, 37])
def test_transposed_matches_mlx(native, kernel, bits, group_size, rows, groups) -> None:
    # Odd sizes: 67 output rows and 13 rows of x leave a remainder for every blocking in the
    # kernels; 9 and 37 groups per row, the tails of the kernels' steps of 2, 8 and 16 groups
    # (and, at group size 32, an odd number of 32-value blocks: the VNNI kernels read 64).
    w, scales, biases = quantized(67, groups * group_size, bits, group_size)
    x = mx.random.normal((rows, groups * group_size), key=mx.random.key(1))
    if int8_in_use(native, kernel, rows):
        want = int8_reference(x, w, scales, biases, group_size, bits)
    else:
        want = mx.quantized_matmul(x, w, scales, biases, True, group_size, bits)
    got = native.quantized_matmul(x, w, scales, biases, True, group_size, bits, kernel=kernel)
    assert_close(got, want)


@pytest.mark.parametrize("bits", [4, 8])
@pytest.mark.parametrize("group_size", [32, 128])
@pytest.mark.parametrize("tokens", [1, 30])
@pytest.mark.parametrize("kernel", ["auto", "int8-avx2"])
def test_a_sequence_gets_the_same_bits_alone_and_in_a_batch(
    native, bits, group_size, tokens, kernel
):
    # Greedy decoding must not change with the number of concurrent requests: every row's
    # result is computed the same way whatever the batch (kernel and order of operations).
    # (Where "auto" sends sequences of 64 rows and more to the BLAS, sgemm gives no such
    # promise for them.)
    w, scales, biases = quantized(37, 37 * group_size, bits, group_size)
    x = mx.random.normal((5, tokens, 37 * group_size), key=mx.random.key(8))
    args = (w, scales, biases, True, group_size, bits)
    together = native.quantized_matmul(x, *args, kernel=kernel)
    for i in range(5):
        alone = native.quantized_matmul(x[i : i + 1], *args, kernel=kernel)
        assert mx.array_equal(alone, together[i : i + 1]).item(), f"sequence {i}"


@pytest.mark.parametrize("bits", [4, 8])
def test_int8_rounding_error_is_small(native, bits) -> None:
    # The int8 kernels' answer stays within a fraction of a percent of the exact product.
    w, scales, biases = quantized(256, 1024, bits, 64)
    x = mx.random.normal((4, 1024), key=mx.random.key(7))
    exact = mx.quantized_matmul(x, w, scales, biases, True, 64, bits)
    got = native.quantized_matmul(x, w, scales, biases, True, 64, bits, kernel="int8")
    assert_close(got, exact, rtol=1e-2)


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
    got = native.quantized_matmul(x, w, scales, biases, True, 32, 4, kernel="float")
    assert got.dtype == dtype
    error = mx.abs(got.astype(f32) - truth).max()
    # Rounding the output to 8 (bfloat16) or 11 (float16) significant bits, no more.
    assert float(error) <= float(mx.abs(truth).max()) * 2.0**-8
    assert float(error) <= float(mlx_error)


def test_batched_and_strided_x(native) -> None:
    w, scales, biases = quantized(48, 128, 4, 32)
    x = mx.random.normal((2, 3, 128), key=mx.random.key(4))
    for kernel in EXACT_KERNELS:
        want = mx.quantized_matmul(x, w, scales, biases, True, 32, 4)
        got = native.quantized_matmul(x, w, scales, biases, True, 32, 4, kernel=kernel)
        assert_close(got, want)
        xt = mx.random.normal((128, 6), key=mx.random.key(5)).T  # a transposed view
        want = mx.quantized_matmul(xt, w, scales, biases, True, 32, 4)
        got = native.quantized_matmul(xt, w, scales, biases, True, 32, 4, kernel=kernel)
        assert_close(got, want)
    # The int8 kernels take the same views (x is copied row by row before it is rounded).
    want = int8_reference(xt, w, scales, biases, 32, 4)
    assert_close(native.quantized_matmul(xt, w, scales, biases, True, 32, 4, kernel="int8"), want)


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize(("bits", "group_size"), [(4, 32), (4, 128), (8, 64)])
def test_dequantize_matches_mlx(native, kernel, bits, group_size) -> None:
    w, scales, biases = quantized(33, 2 * group_size, bits, group_size)
    want = mx.dequantize(w, scales, biases, group_size, bits)
    got = native.dequantize(w, scales, biases, group_size, bits, kernel=kernel)
    assert_close(got, want, rtol=1e-6)


def test_large_matrix_over_threads(native) -> None:
    # Big enough to be split over every core (parallel.h: 4M multiply-adds a thread): the
    # split must cover every output row once.
    w, scales, biases = quantized(4099, 2048, 4, 64)
    for rows in (1, 5):
        x = mx.random.normal((rows, 2048), key=mx.random.key(6))
        want = mx.quantized_matmul(x, w, scales, biases, True, 64, 4)
        got = native.quantized_matmul(x, w, scales, biases, True, 64, 4, kernel="float")
        assert_close(got, want)
        want = int8_reference(x, w, scales, biases, 64, 4)
        got = native.quantized_matmul(x, w, scales, biases, True, 64, 4, kernel="int8")
        assert_close(got, want)


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
        (dict(kernel="fast"), "kernel must be 'auto', 'float', 'int8', 'int8-avx2' or 'generic'"),
    ]
    for change, message in cases:
        args = dict(x=x, w=w, scales=scales, biases=biases, group_size=32, bits=4) | change
        kernel = args.pop("kernel", "auto")
        with pytest.raises(ValueError, match=r"^(quantized_matmul|osaurus kernels): ") as info:
            native.quantized_matmul(**args, kernel=kernel)
        assert message in str(info.value)
