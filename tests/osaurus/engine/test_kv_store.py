"""The KV store's bookkeeping, on real mlx-lm cache objects (no model needed)."""

from __future__ import annotations

import mlx.core as mx
from mlx_lm.models.cache import KVCache

from osaurus.engine.kv_store import KVCacheStore, common_prefix_length, materialize

LAYERS = 2


def cache_holding(n_tokens: int) -> list[KVCache]:
    """A per-layer cache that holds `n_tokens` positions, like one a model filled."""
    cache = [KVCache() for _ in range(LAYERS)]
    for layer in cache:
        kv = mx.ones((1, 1, n_tokens, 4))
        layer.update_and_fetch(kv, kv)
    return cache


def test_common_prefix_length():
    assert common_prefix_length([1, 2, 3], [1, 2, 4]) == 2
    assert common_prefix_length([1, 2], [1, 2, 3]) == 2
    assert common_prefix_length([], [1]) == 0


def test_a_session_cache_is_reused_for_a_longer_prompt():
    store = KVCacheStore(budget_bytes=1 << 30)
    first = store.checkout("m", [1, 2, 3], "s")
    assert first.cache is None and first.session_id == "s"
    store.checkin(first, [1, 2, 3, 4, 5], cache_holding(5))  # prompt + reply

    lease = store.checkout("m", [1, 2, 3, 4, 5, 6, 7], "s")
    assert lease.reused == 5
    assert lease.cache[0].offset == 5


def test_a_diverging_prompt_trims_the_cache_to_the_common_prefix():
    store = KVCacheStore(budget_bytes=1 << 30)
    store.checkin(store.checkout("m", [1, 2, 3], "s"), [1, 2, 3, 4, 5], cache_holding(5))

    lease = store.checkout("m", [1, 2, 9, 9], "s")
    assert lease.reused == 2
    assert all(layer.offset == 2 for layer in lease.cache)


def test_the_last_prompt_token_is_always_left_to_prefill():
    store = KVCacheStore(budget_bytes=1 << 30)
    store.checkin(store.checkout("m", [1, 2, 3], "s"), [1, 2, 3], cache_holding(3))
    lease = store.checkout("m", [1, 2, 3], "s")
    assert lease.reused == 2 and lease.cache[0].offset == 2


def test_a_session_in_use_is_not_shared():
    store = KVCacheStore(budget_bytes=1 << 30)
    store.checkin(store.checkout("m", [1, 2], "s"), [1, 2, 3, 4], cache_holding(4))
    holder = store.checkout("m", [1, 2, 3, 4, 5], "s")
    assert holder.reused == 4 and store.session("s").in_use

    other = store.checkout("m", [1, 2, 3, 4, 5], "s")
    assert other.session_id is None and other.cache is None
    store.checkin(other, [1, 2, 3, 4, 5, 6], cache_holding(6))  # goes to the prefix cache
    assert store.session("s").in_use and store.session("s").cache is None

    store.checkin(holder, [1, 2, 3, 4, 5, 7], cache_holding(6))
    assert store.session("s").tokens == [1, 2, 3, 4, 5, 7]
    assert not store.session("s").in_use


def test_prefix_reuse_without_a_session():
    store = KVCacheStore(budget_bytes=1 << 30)
    store.checkin(store.checkout("m", [1, 2, 3]), [1, 2, 3, 4], cache_holding(4))
    assert store.checkout("m", [1, 2, 3, 4, 5]).reused == 4
    assert store.checkout("other-model", [1, 2, 3, 4, 5]).reused == 0


def test_prefix_reuse_can_be_turned_off():
    store = KVCacheStore(budget_bytes=1 << 30, prefix_cache=False)
    store.checkin(store.checkout("m", [1, 2, 3]), [1, 2, 3, 4], cache_holding(4))
    assert store.checkout("m", [1, 2, 3, 4, 5]).reused == 0


def test_over_budget_prefixes_go_first_then_the_oldest_session():
    kept = cache_holding(4)
    materialize(kept)  # as the store keeps it: 4 positions
    one = sum(c.nbytes for c in kept)
    store = KVCacheStore(budget_bytes=2 * one)
    store.checkin(store.checkout("m", [1], "a"), [1, 2, 3, 4], cache_holding(4))
    store.checkin(store.checkout("m", [5]), [5, 6, 7, 8], cache_holding(4))  # a prefix
    assert store.prefix_bytes == one

    store.checkin(store.checkout("m", [9], "b"), [9, 10, 11, 12], cache_holding(4))
    assert store.prefix_bytes == 0  # the prefix entry went first
    assert store.session("a").nbytes == one and store.session("b").nbytes == one

    store.checkin(store.checkout("m", [13], "c"), [13, 14, 15, 16], cache_holding(4))
    assert store.session("a") is None  # the oldest session went next
    assert {s.session_id for s in store.sessions()} == {"b", "c"}
    assert store.session_bytes <= store.budget_bytes


def test_a_session_deleted_while_in_use_is_not_brought_back():
    store = KVCacheStore(budget_bytes=1 << 30)
    lease = store.checkout("m", [1, 2], "s")
    assert store.delete_session("s")
    store.checkin(lease, [1, 2, 3], cache_holding(3))
    assert store.session("s") is None
    assert store.prefix_bytes == 0  # nor kept anonymously


def test_dropping_a_model_forgets_its_caches():
    store = KVCacheStore(budget_bytes=1 << 30)
    store.checkin(store.checkout("m", [1], "s"), [1, 2, 3], cache_holding(3))
    store.checkin(store.checkout("m", [7, 8]), [7, 8, 9], cache_holding(3))
    store.checkin(store.checkout("n", [1], "t"), [1, 2, 3], cache_holding(3))
    store.drop_model("m")
    assert store.session("s") is None and store.prefix_bytes == 0
    assert store.session("t") is not None


def test_a_kept_cache_does_not_pin_the_batch_buffer_it_came_from():
    """A cache taken out of a batch is a lazy copy of a slice of the batch's buffer (as
    mlx-lm's BatchKVCache.extract makes it): once kept, only its own bytes stay alive."""
    import gc

    gc.collect()
    baseline = mx.get_active_memory()
    batch = mx.zeros((16, 1, 4096, 64))  # 16 sequences' keys: 16 MiB
    mx.eval(batch)
    cache = [KVCache() for _ in range(LAYERS)]
    for layer in cache:
        layer.keys = mx.contiguous(batch[0:1, :, :10])
        layer.values = mx.contiguous(batch[0:1, :, :10])
        layer.offset = 10
    del batch
    store = KVCacheStore(budget_bytes=1 << 30)
    store.checkin(store.checkout("m", list(range(10))), list(range(10)), cache)
    gc.collect()
    kept = mx.get_active_memory() - baseline
    assert kept < 1 << 20, kept  # its own few KiB, not the 16 MiB batch


def test_a_kept_cache_holds_its_tokens_not_its_buffers_spare_room():
    """KVCache grows 256 positions at a time and trimming keeps the buffer: what the store
    keeps (and counts against its budget) is the positions in use, and it still grows."""
    import gc

    cache = [KVCache() for _ in range(LAYERS)]
    for layer in cache:
        kv = mx.random.normal((1, 3, 300, 64))  # the test model's 3 KV heads of 64
        layer.update_and_fetch(kv, kv)  # a 512-position buffer
        layer.trim(260)  # 40 positions left, as after a rejected draft or a shorter prefix
    expected = [mx.array(layer.keys[..., :40, :]) for layer in cache]
    mx.eval(expected, [(layer.keys, layer.values) for layer in cache])
    gc.collect()
    baseline = mx.get_active_memory()
    store = KVCacheStore(budget_bytes=1 << 30)
    store.checkin(store.checkout("m", list(range(40))), list(range(40)), cache)
    gc.collect()
    position_bytes = 3 * 64 * 4  # float32
    assert store.prefix_bytes == LAYERS * 2 * 40 * position_bytes
    freed = baseline - mx.get_active_memory()
    spare_room = LAYERS * 2 * (512 - 40) * position_bytes
    # Near, not equal: in a full run the count moved by 15 KiB (of 1.4 MiB).
    assert abs(freed - spare_room) < spare_room // 20, (freed, spare_room)
    for layer, keys in zip(cache, expected, strict=True):
        assert layer.keys.shape[2] == 40 and mx.array_equal(layer.keys, keys)
        kv = mx.full((1, 3, 1, 64), 7.0)
        keys_now, _ = layer.update_and_fetch(kv, kv)
        assert keys_now.shape[2] == 41 and mx.array_equal(keys_now[..., :40, :], keys)


def test_a_long_cache_keeps_its_little_spare_room():
    """Copying a long session's cache to free under 256 positions costs more than it frees."""
    cache = cache_holding(500)  # a 512-position buffer
    materialize(cache)
    assert all(layer.keys.shape[2] == 512 for layer in cache)
