"""osaurus' attention primitive against MLX's reference, mx.fast.scaled_dot_product_attention."""

from __future__ import annotations

import sys

import mlx.core as mx
import pytest

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="the native kernels serve MLX's CPU backend"
)


def qkv(batch, heads, kv_heads, queries, keys, dims=64, seed=0):
    q, k, v = (
        mx.random.normal(shape, key=mx.random.key(seed + i))
        for i, shape in enumerate(
            [
                (batch, heads, queries, dims),
                (batch, kv_heads, keys, dims),
                (batch, kv_heads, keys, dims),
            ]
        )
    )
    return q, k, v


def assert_close(got, want) -> None:
    assert got.shape == want.shape and got.dtype == want.dtype
    err = float(mx.abs(got - want).max())
    assert err <= 1e-5 * max(float(mx.abs(want).max()), 1e-6), f"max error {err:.3g}"


@pytest.mark.parametrize(("heads", "kv_heads"), [(9, 3), (4, 4), (8, 1)])
@pytest.mark.parametrize("queries", [1, 3, 9, 40])
@pytest.mark.parametrize("keys", [1, 17, 40, 340])
def test_matches_mlx_with_grouped_heads(native, heads, kv_heads, queries, keys) -> None:
    if queries > keys:
        pytest.skip("more queries than keys")
    q, k, v = qkv(2, heads, kv_heads, queries, keys)
    scale = 64**-0.5
    for mask in (None, "causal"):
        want = mx.fast.scaled_dot_product_attention(q, k, v, scale=scale, mask=mask)
        got = native.attention(q, k, v, scale=scale, causal=mask == "causal")
        assert_close(got, want)


def test_boolean_and_additive_masks_broadcast(native) -> None:
    # As mlx-lm's batched caches make them: (batch, 1, queries, keys), left padding masked.
    q, k, v = qkv(3, 6, 2, 2, 20, dims=32)
    keep = mx.arange(20)[None, None, None, :] >= mx.array([0, 5, 11])[:, None, None, None]
    keep = keep & (mx.arange(20)[None, None, None, :] <= mx.array([18, 19])[None, None, :, None])
    for mask in (keep, mx.where(keep, 0.0, -1e9), mx.where(keep, 0.0, -1e9).astype(mx.float16)):
        want = mx.fast.scaled_dot_product_attention(q, k, v, scale=0.3, mask=mask)
        assert_close(native.attention(q, k, v, scale=0.3, mask=mask), want)


def test_strided_cache_views(native) -> None:
    # A KV cache hands out views of a larger buffer: keys[..., :offset, :].
    q, k, v = qkv(2, 4, 2, 1, 64)
    kv, vv = k[:, :, :37, :], v[:, :, :37, :]
    want = mx.fast.scaled_dot_product_attention(q, kv, vv, scale=0.125, mask=None)
    assert_close(native.attention(q, kv, vv, scale=0.125), want)
    qt = mx.random.normal((2, 1, 4, 64)).transpose(0, 2, 1, 3)  # heads and positions swapped
    want = mx.fast.scaled_dot_product_attention(qt, kv, vv, scale=0.125, mask=None)
    assert_close(native.attention(qt, kv, vv, scale=0.125), want)


def test_values_may_have_other_dims(native) -> None:
    q, k, _ = qkv(1, 4, 2, 2, 10, dims=32)
    v = mx.random.normal((1, 2, 10, 48))
    want = mx.fast.scaled_dot_product_attention(q, k, v, scale=0.2, mask="causal")
    assert_close(native.attention(q, k, v, scale=0.2, causal=True), want)


@pytest.mark.parametrize(("dims", "value_dims"), [(20, 20), (128, 128), (64, 80)])
def test_any_head_size(native, dims, value_dims) -> None:
    # 4 keys at a time (odd counts repeat the last), 3 query rows at a time, 32 value columns at
    # a time; head sizes that are not a multiple of 8 take a plain loop.
    q, k, _ = qkv(2, 8, 2, 5, 71, dims=dims)
    v = mx.random.normal((2, 2, 71, value_dims))
    for mask in (None, "causal"):
        want = mx.fast.scaled_dot_product_attention(q, k, v, scale=0.1, mask=mask)
        assert_close(native.attention(q, k, v, scale=0.1, causal=mask == "causal"), want)


def test_masked_keys_values_are_never_read_into_the_result(native) -> None:
    # A masked key's value may be anything, even NaN: it must not reach the output.
    q, k, v = qkv(2, 6, 2, 1, 30)
    v = mx.where(mx.arange(30)[None, None, :, None] < 4, mx.array(float("nan")), v)
    keep = (mx.arange(30) >= 4)[None, None, None, :]
    want = mx.fast.scaled_dot_product_attention(q, k[:, :, 4:], v[:, :, 4:], scale=0.125)
    assert_close(native.attention(q, k, v, scale=0.125, mask=keep), want)


def test_bad_arguments_are_named(native) -> None:
    q, k, v = qkv(1, 4, 2, 1, 8)
    cases = [
        (dict(q=q[0]), "must be 4-D"),
        (dict(q=q.astype(mx.float16)), "q must be float32"),
        (dict(k=k.astype(mx.float16)), "both float32 or both float16"),
        (dict(k=k.astype(mx.bfloat16), v=v.astype(mx.bfloat16)), "both float32 or both float16"),
        (dict(k=k[:, :, :, :32]), "do not fit q"),
        (dict(k=mx.zeros((1, 3, 8, 64)), v=mx.zeros((1, 3, 8, 64))), "not a multiple"),
        (dict(mask=mx.ones((2, 8), dtype=mx.bool_)), "does not broadcast"),
        (dict(mask=mx.ones((1, 8), dtype=mx.int32)), "boolean or floating"),
        (dict(mask=mx.ones((1, 8), dtype=mx.bool_), causal=True), "not both"),
    ]
    for change, message in cases:
        args = dict(q=q, k=k, v=v, scale=1.0) | change
        with pytest.raises(ValueError, match=r"^attention: ") as info:
            native.attention(**args)
        assert message in str(info.value)


@pytest.mark.parametrize(
    ("queries", "keys", "dims", "value_dims"),
    [(1, 200, 64, 64), (40, 71, 64, 80), (5, 130, 20, 20)],
)
def test_float16_cache_is_read_as_its_float32_values(
    native, queries, keys, dims, value_dims
) -> None:
    # A float16 KV cache, strided as a cache hands it out and over more than one key tile:
    # the same numbers, bit for bit, as the float32 attention over the same values.
    q, k, _ = qkv(2, 6, 2, queries, keys + 9, dims=dims, seed=5)
    v = mx.random.normal((2, 2, keys + 9, value_dims), key=mx.random.key(6))
    k16, v16 = k.astype(mx.float16)[:, :, :keys], v.astype(mx.float16)[:, :, :keys]
    k32, v32 = k16.astype(mx.float32), v16.astype(mx.float32)
    keep = (mx.arange(keys) >= 3)[None, None, None, :]
    for mask in (None, "causal", keep):
        args = dict(scale=0.2, causal=True) if mask == "causal" else dict(scale=0.2, mask=mask)
        got = native.attention(q, k16, v16, **args)
        assert got.dtype == mx.float32
        assert mx.array_equal(got, native.attention(q, k32, v32, **args)).item()
    want = mx.fast.scaled_dot_product_attention(q, k32, v32, scale=0.2, mask=None)
    assert_close(native.attention(q, k16, v16, scale=0.2), want)


@pytest.mark.parametrize("keys", [5, 37, 301])
@pytest.mark.parametrize("padding", [1, 7, 16])
def test_left_padding_does_not_change_a_bit(native, keys, padding) -> None:
    # mlx-lm pads shorter prompts of a batch on the left, behind a mask; greedy output must not
    # depend on the batch, so the padded row must give exactly the numbers of the bare one.
    q, k, v = qkv(1, 6, 2, 3, keys, dims=32, seed=3)
    pad = mx.random.normal((1, 2, padding, 32), key=mx.random.key(9))
    kp, vp = mx.concatenate([pad, k], axis=2), mx.concatenate([pad, v], axis=2)
    position = mx.arange(padding + keys)
    last = padding + keys - 3 + mx.arange(3)  # causal: query l sees up to its own key
    keep = (position[None, :] >= padding) & (position[None, :] <= last[:, None])
    bare = native.attention(q, k, v, scale=0.4, causal=True)
    padded = native.attention(q, kp, vp, scale=0.4, mask=keep[None, None])
    assert mx.array_equal(bare, padded).item()
