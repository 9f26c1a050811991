"""The r16 layout (kernels_r16.h): weights repacked 16 output rows to a vector. Repacking only
moves bytes, and every kernel multiplies a repacked matrix as it multiplies the stored one."""

from __future__ import annotations

import sys

import mlx.core as mx
import pytest
from quantized_reference import KERNELS, assert_close, int8_in_use, int8_reference, quantized

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="the native kernels serve MLX's CPU backend"
)


@pytest.mark.parametrize("bits", [4, 8])
@pytest.mark.parametrize("group_size", [32, 64, 128])
def test_repacking_moves_bytes_only(native, bits, group_size) -> None:
    w, scales, biases = quantized(48, 3 * group_size, bits, group_size, dtype=mx.float16)
    packed, s, b = native.repack(w, scales, biases, group_size, bits)
    assert packed.dtype == mx.uint8 and packed.nbytes == w.nbytes
    assert s.dtype == scales.dtype and s.shape == scales.shape and b.shape == biases.shape
    # Same multiset of bytes, not the same order (the rows are interleaved).
    assert not mx.array_equal(packed.reshape(-1), w.view(mx.uint8).reshape(-1)).item()
    assert mx.array_equal(mx.sort(packed.reshape(-1)), mx.sort(w.view(mx.uint8).reshape(-1)))
    # And every kernel's dequantize gives the stored matrix's values back.
    for kernel in KERNELS:
        want = native.dequantize(w, scales, biases, group_size, bits, kernel=kernel)
        got = native.dequantize(packed, s, b, group_size, bits, kernel=kernel)
        assert mx.array_equal(got, want).item(), kernel


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("bits", [4, 8])
@pytest.mark.parametrize("group_size", [32, 64, 128])
@pytest.mark.parametrize("rows", [1, 3, 8, 14, 64])
@pytest.mark.parametrize("groups", [9, 37])
def test_repacked_matches_mlx(native, kernel, bits, group_size, rows, groups) -> None:
    # 80 output rows: five tiles of 16; 14 rows of x: a step of 8, one of 4, a tail of 2.
    w, scales, biases = quantized(80, groups * group_size, bits, group_size)
    x = mx.random.normal((rows, groups * group_size), key=mx.random.key(1))
    if int8_in_use(native, kernel, rows, r16_kernel=native.repack_available(bits)):
        want = int8_reference(x, w, scales, biases, group_size, bits)
    else:
        want = mx.quantized_matmul(x, w, scales, biases, True, group_size, bits)
    repacked = native.repack(w, scales, biases, group_size, bits)
    got = native.quantized_matmul(x, *repacked, True, group_size, bits, kernel=kernel)
    assert_close(got, want)


@pytest.mark.parametrize("bits", [4, 8])
def test_a_sequence_gets_the_same_bits_alone_and_in_a_batch(native, bits) -> None:
    w, scales, biases = quantized(64, 37 * 32, bits, 32)
    repacked = native.repack(w, scales, biases, 32, bits)
    x = mx.random.normal((11, 1, 37 * 32), key=mx.random.key(8))
    together = native.quantized_matmul(x, *repacked, True, 32, bits)
    for i in range(11):
        alone = native.quantized_matmul(x[i : i + 1], *repacked, True, 32, bits)
        assert mx.array_equal(alone, together[i : i + 1]).item(), f"sequence {i}"


@pytest.mark.parametrize("bits", [4, 8])
@pytest.mark.parametrize("group_size", [32, 64, 128])
def test_the_avx2_and_vnni_kernels_agree_to_the_bit(native, bits, group_size) -> None:
    # Same int32 dot products, same float steps: the matmuls give the same numbers on either CPU.
    if native.simd() != "avx512-vnni":
        pytest.skip("needs both kernels: AVX-512 VNNI")
    w, scales, biases = quantized(48, 5 * group_size, bits, group_size)
    repacked = native.repack(w, scales, biases, group_size, bits)
    x = mx.random.normal((5, 5 * group_size), key=mx.random.key(3))
    vnni = native.quantized_matmul(x, *repacked, True, group_size, bits, kernel="int8")
    avx2 = native.quantized_matmul(x, *repacked, True, group_size, bits, kernel="int8-avx2")
    assert mx.array_equal(vnni, avx2).item()


# Enough work for both cores (kR16MinWorkPerThread): every tile computed once, whether the
# matrix goes in ~8 chunks per thread (4112 x 2048) or, small, in one share per thread of an odd
# number of tiles (592 x 576: 37 tiles, kR16MinChunkWeights).
@pytest.mark.parametrize(("out_rows", "cols"), [(4096 + 16, 2048), (16 * 37, 576)])
def test_matrix_over_threads(native, out_rows, cols) -> None:
    w, scales, biases = quantized(out_rows, cols, 4, 64)
    repacked = native.repack(w, scales, biases, 64, 4)
    for rows in (1, 5):
        x = mx.random.normal((rows, cols), key=mx.random.key(6))
        want = int8_reference(x, w, scales, biases, 64, 4)
        assert_close(native.quantized_matmul(x, *repacked, True, 64, 4), want)


def test_bad_arguments_are_named(native) -> None:
    w, scales, biases = quantized(40, 64, 4, 32)  # 40 rows: not whole tiles
    with pytest.raises(ValueError, match=r"^repack: the r16 layout takes a multiple of 16 rows"):
        native.repack(w, scales, biases, 32, 4)
    w, scales, biases = quantized(32, 64, 4, 32)
    packed, s, b = native.repack(w, scales, biases, 32, 4)
    with pytest.raises(ValueError, match=r"^repack: w must be uint32"):
        native.repack(packed, s, b, 32, 4)
    with pytest.raises(ValueError, match="repacked w is multiplied transposed only"):
        native.quantized_matmul(mx.ones((1, 32)), packed, s, b, False, 32, 4)
    with pytest.raises(ValueError, match="a repacked w has a multiple of 16 rows"):
        native.quantized_matmul(mx.ones((1, 64)), packed[:8], s[:8], b[:8], True, 32, 4)


@pytest.mark.parametrize("bits", [4, 8])
@pytest.mark.parametrize("sign", [1, -1])
def test_the_largest_weights_and_x_do_not_overflow(native, bits, sign) -> None:
    # Every weight at its largest (15 or 255) and every x rounded to +-127: the AVX2 kernel's
    # int16 sums of a block are at their bound, and must still give MLX's product exactly.
    rows, cols, group_size = 32, 4 * 128, 128
    w = mx.full((rows, cols * bits // 32), 0xFFFFFFFF, dtype=mx.uint32)
    scales = mx.full((rows, cols // group_size), 0.01)
    biases = mx.zeros((rows, cols // group_size))
    x = sign * mx.ones((3, cols))
    want = int8_reference(x, w, scales, biases, group_size, bits)
    repacked = native.repack(w, scales, biases, group_size, bits)
    got = native.quantized_matmul(x, *repacked, True, group_size, bits, kernel="int8")
    assert_close(got, want)
    assert abs(float(got[0, 0]) - sign * cols * 0.01 * (2**bits - 1)) < 1e-2
