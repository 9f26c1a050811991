"""osaurus' one-primitive RMS norm and RoPE against MLX's reference, mx.fast.rms_norm and
mx.fast.rope (on the CPU these run MLX's fallbacks, made of plain ops).

In float32 both compute the same formulas in float32, so they agree to rounding. In half
precision MLX rounds its intermediates (cos and sin, each product) to the input type while ours
round once, so ours is compared with the float32 result, where it must be at least as close.
"""

from __future__ import annotations

import sys

import mlx.core as mx
import pytest

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="the native kernel serves MLX's CPU backend"
)


def normal(shape, seed=0, dtype=mx.float32) -> mx.array:
    return mx.random.normal(shape, key=mx.random.key(seed)).astype(dtype)


def max_error(got: mx.array, want: mx.array) -> float:
    assert got.shape == want.shape
    return float(mx.abs(got.astype(mx.float32) - want.astype(mx.float32)).max())


def test_rms_norm_matches_mlx(native) -> None:
    for shape in [(576,), (3, 5, 576), (2, 7)]:  # 7: a row shorter than the 8-wide sums
        x, w = normal(shape), normal(shape[-1:], seed=1)
        got = native.rms_norm(x, w, 1e-5)
        assert got.dtype == mx.float32
        assert max_error(got, mx.fast.rms_norm(x, w, 1e-5)) < 1e-5
        assert max_error(native.rms_norm(x, None, 1e-6), mx.fast.rms_norm(x, None, 1e-6)) < 1e-5


def test_rms_norm_of_a_view_and_a_large_batch(native) -> None:
    x, w = normal((300, 4, 64)).transpose(1, 0, 2), normal((64,), seed=1)  # not contiguous
    assert max_error(native.rms_norm(x, w, 1e-5), mx.fast.rms_norm(x, w, 1e-5)) < 1e-5


@pytest.mark.parametrize("dtype", [mx.float16, mx.bfloat16])
def test_rms_norm_in_half_precision(native, dtype) -> None:
    x, w = normal((4, 256), dtype=dtype), normal((256,), seed=1, dtype=dtype)
    truth = mx.fast.rms_norm(x.astype(mx.float32), w.astype(mx.float32), 1e-5)
    got, theirs = native.rms_norm(x, w, 1e-5), mx.fast.rms_norm(x, w, 1e-5)
    assert got.dtype == theirs.dtype == dtype
    assert max_error(got, truth) <= max_error(theirs, truth)
    # The output type follows MLX's promotion: a float32 weight makes a float32 result.
    assert native.rms_norm(x, w.astype(mx.float32), 1e-5).dtype == mx.float32


ROPE_CASES = [
    # shape, dims, traditional, base, scale, offset
    ((1, 9, 1, 64), 64, False, 100000.0, 1.0, 17),  # a decode step
    ((2, 3, 20, 64), 64, False, 10000.0, 1.0, 0),  # a prompt, two sequences
    ((2, 3, 5, 64), 64, True, 10000.0, 1.0, 3),
    ((2, 3, 5, 80), 32, False, 10000.0, 0.25, 1000),  # partial rotation, scaled positions
    ((2, 5, 48), 48, True, 500.0, 1.0, 2),  # 3-D: one head
    ((2, 2, 3, 4, 32), 32, False, 10000.0, 1.0, 9),  # 5-D: heads in two axes
]


@pytest.mark.parametrize(("shape", "dims", "traditional", "base", "scale", "offset"), ROPE_CASES)
def test_rope_matches_mlx(native, shape, dims, traditional, base, scale, offset) -> None:
    x = normal(shape)
    kw = dict(traditional=traditional, base=base, scale=scale, offset=offset)
    got = native.rope(x, dims, **kw)
    assert got.dtype == mx.float32
    assert max_error(got, mx.fast.rope(x, dims, **kw)) < 1e-4


def test_rope_with_one_offset_per_sequence_on_a_transposed_view(native) -> None:
    # As mlx-lm's batched decoding calls it: queries (B, L, H, D) transposed to (B, H, L, D),
    # positions per sequence, negative for left padding.
    x = normal((3, 4, 9, 64)).transpose(0, 2, 1, 3)
    offset = mx.array([-2, 0, 41])
    kw = dict(traditional=False, base=10000.0, scale=1.0, offset=offset)
    assert max_error(native.rope(x, 64, **kw), mx.fast.rope(x, 64, **kw)) < 1e-4


def test_rope_with_frequencies(native) -> None:
    # Llama 3's scaled RoPE passes its own frequencies instead of a base.
    x, freqs = normal((1, 4, 6, 64)), mx.random.uniform(1, 5000, (32,), key=mx.random.key(2))
    kw = dict(traditional=False, base=None, scale=1.0, offset=300, freqs=freqs)
    assert max_error(native.rope(x, 64, **kw), mx.fast.rope(x, 64, **kw)) < 1e-4


@pytest.mark.parametrize("dtype", [mx.float16, mx.bfloat16])
def test_rope_in_half_precision(native, dtype) -> None:
    x = normal((1, 4, 12, 64), dtype=dtype)
    kw = dict(traditional=False, base=10000.0, scale=1.0, offset=50)
    truth = mx.fast.rope(x.astype(mx.float32), 64, **kw)
    got, theirs = native.rope(x, 64, **kw), mx.fast.rope(x, 64, **kw)
    assert got.dtype == theirs.dtype == dtype
    assert max_error(got, truth) <= max_error(theirs, truth)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda k: k.rms_norm(mx.array(1.0), None, 1e-5), "at least one dimension"),
        (lambda k: k.rms_norm(mx.zeros((2, 8), mx.int32), None, 1e-5), "x must be float32"),
        (lambda k: k.rms_norm(mx.zeros((2, 8)), mx.ones((7,)), 1e-5), r"shape \(8,\)"),
        (lambda k: k.rope(mx.zeros((4, 8)), 8, **_ROPE), "at least 3 dimensions"),
        (lambda k: k.rope(mx.zeros((1, 4, 8)), 9, **_ROPE), "dims must be even"),
        (lambda k: k.rope(mx.zeros((1, 4, 8)), 16, **_ROPE), "dims must be even"),
        (
            lambda k: k.rope(mx.zeros((2, 1, 4, 8)), 8, **{**_ROPE, "offset": mx.array([1, 2, 3])}),
            "one per batch row",
        ),
        (
            lambda k: k.rope(mx.zeros((1, 4, 8)), 8, **{**_ROPE, "offset": mx.array([1.5])}),
            "offset must be an integer",
        ),
        (lambda k: k.rope(mx.zeros((1, 4, 8)), 8, **{**_ROPE, "base": None}), "exactly one"),
        (
            lambda k: k.rope(mx.zeros((1, 4, 8)), 8, **{**_ROPE, "freqs": mx.ones((3,))}),
            "exactly one",
        ),
        (
            lambda k: k.rope(
                mx.zeros((1, 4, 8)), 8, **{**_ROPE, "base": None, "freqs": mx.ones((3,))}
            ),
            r"freqs must have shape \(4,\)",
        ),
    ],
)
def test_bad_arguments_name_the_problem(native, call, message) -> None:
    with pytest.raises(ValueError, match=message):
        call(native)


_ROPE = dict(traditional=False, base=10000.0, scale=1.0, offset=0)


@pytest.mark.parametrize("shape", [(1, 49152), (8, 300), (2, 3, 17), (5,)])
def test_logsumexp_matches_mlx(native, shape) -> None:
    x = 5 * mx.random.normal(shape, key=mx.random.key(9))
    want = mx.logsumexp(x, axis=-1, keepdims=True)
    got = native.logsumexp(x)
    assert got.shape == want.shape
    assert float(mx.abs(got - want).max()) <= 1e-5 * float(mx.abs(want).max())


def test_logsumexp_of_masked_rows(native) -> None:
    # Logits processors mask tokens with -inf; a row may be all masked.
    x = mx.random.normal((3, 100), key=mx.random.key(10))
    keep = mx.arange(100)[None, :] < mx.array([100, 7, 0])[:, None]
    x = mx.where(keep, x, -float("inf"))
    want = mx.logsumexp(x, axis=-1, keepdims=True)
    got = native.logsumexp(x)
    assert mx.allclose(got[:2], want[:2], atol=1e-5).item()
    assert got[2, 0].item() == -float("inf") == want[2, 0].item()


def test_logsumexp_of_a_row_does_not_depend_on_the_batch(native) -> None:
    # Rows split over the cores: each must get the bits it gets alone (greedy output must not
    # depend on how many requests decode together).
    x = 5 * mx.random.normal((9, 49157), key=mx.random.key(11))
    together = native.logsumexp(x)
    for r in range(9):
        assert mx.array_equal(native.logsumexp(x[r : r + 1]), together[r : r + 1]).item()


def test_logsumexp_with_infinities_and_nan(native) -> None:
    x = mx.array([[1.0, float("inf"), 2.0], [1.0, float("nan"), 2.0], [-3.0, 0.5, 2.0]])
    got = native.logsumexp(x)
    assert got[0, 0].item() == float("inf")
    assert mx.isnan(got[1, 0]).item()
    assert abs(got[2, 0].item() - mx.logsumexp(x[2]).item()) < 1e-6


def test_logsumexp_takes_float32_only(native) -> None:
    with pytest.raises(ValueError, match=r"^logsumexp: x must be float32"):
        native.logsumexp(mx.ones((2, 4), dtype=mx.float16))


@pytest.mark.parametrize("shape", [(1, 49152), (8, 49157), (2, 3, 17), (5,), (4, 1)])
def test_argmax_matches_mlx(native, shape) -> None:
    x = 5 * mx.random.normal(shape, key=mx.random.key(12))
    want = mx.argmax(x, axis=-1)
    got = native.argmax(x)
    assert got.shape == want.shape and got.dtype == want.dtype == mx.uint32
    assert mx.array_equal(got, want).item()


def test_argmax_of_ties_infinities_and_nan_is_mlxs(native) -> None:
    """The first of equal values; a row with a NaN gives its first NaN, as mx.argmax; at every
    position of a vector and of the tail."""
    nan, inf = float("nan"), float("inf")
    rows = [
        [3.0, 3.0, 1.0],
        [-inf, -inf],
        [nan, nan],
        [inf, 1.0, inf],
        [-inf, nan],
        [1.0, nan, 3.0],
    ]
    for row in rows:
        x = mx.array([row])
        assert native.argmax(x).tolist() == mx.argmax(x, axis=-1).tolist(), row
    for at in range(21):
        for value in (nan, inf, 7.0):
            row = mx.zeros((21,)) + mx.where(mx.arange(21) == at, value, 0.0)
            row = mx.where(mx.arange(21) == (at + 5) % 21, 7.0, row)  # a rival maximum
            x = row[None]
            assert native.argmax(x).item() == mx.argmax(x, axis=-1).item(), (at, value)


def test_argmax_takes_float32_only(native) -> None:
    with pytest.raises(ValueError, match=r"^argmax: x must be float32"):
        native.argmax(mx.ones((2, 4), dtype=mx.float16))
    with pytest.raises(ValueError, match=r"^argmax: x must be float32 with a last axis"):
        native.argmax(mx.ones((2, 0)))


def test_argmax_of_a_view(native) -> None:
    """Views (a row sliced from the logits, a transpose) are read through their strides."""
    x = 5 * mx.random.normal((300, 6), key=mx.random.key(13))
    for view in (x.T, x[::3].T, x[:, 2:5]):
        assert mx.array_equal(native.argmax(view), mx.argmax(view, axis=-1)).item()
