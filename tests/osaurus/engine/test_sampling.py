"""Samplers per request: shared where the settings match (so a batch samples in one call),
a request's own where it carries a seed."""

import mlx.core as mx

from osaurus.engine.request import SamplingParams
from osaurus.engine.sampling import SeededSampler, make_request_sampler, take_back_last_draw


def test_requests_with_equal_settings_share_one_sampler():
    warm = SamplingParams(temperature=0.7, top_p=0.9)
    assert make_request_sampler(warm) is make_request_sampler(SamplingParams(0.7, 0.9))
    assert make_request_sampler(warm) is not make_request_sampler(SamplingParams(0.7, 0.8))
    assert make_request_sampler(SamplingParams()) is make_request_sampler(SamplingParams(0.0))


def test_seeded_requests_each_get_their_own_sampler_and_repeat_their_draws():
    seeded = SamplingParams(temperature=1.0, seed=5)
    first, second = make_request_sampler(seeded), make_request_sampler(seeded)
    assert isinstance(first, SeededSampler) and first is not second
    logprobs = mx.log(mx.full((1, 1000), 1 / 1000))
    assert [first(logprobs).item() for _ in range(5)] == [second(logprobs).item() for _ in range(5)]


def test_a_draw_taken_back_is_drawn_again():
    """What lets a seeded sequence drop a token computed ahead and still say the same."""
    seeded = SamplingParams(temperature=1.0, seed=5)
    straight, interrupted = make_request_sampler(seeded), make_request_sampler(seeded)
    logprobs = mx.log(mx.full((1, 1000), 1 / 1000))
    want = [straight(logprobs).item() for _ in range(6)]
    got = [interrupted(logprobs).item() for _ in range(3)]
    interrupted(logprobs)  # a draw whose token is dropped
    take_back_last_draw(interrupted)
    got += [interrupted(logprobs).item() for _ in range(3)]
    assert got == want


def test_a_shared_sampler_draws_each_row_of_a_batch_from_that_rows_distribution():
    """One call over the whole batch, as mlx-lm makes it when its sequences share the sampler."""
    sampler = make_request_sampler(SamplingParams(temperature=1.0, top_k=1))
    favourites = mx.array([3, 17, 0, 999])
    logprobs = mx.where(mx.arange(1000)[None] == favourites[:, None], -0.1, -5.0)
    assert sampler(logprobs).tolist() == favourites.tolist()


def test_greedy_requests_share_the_greedy_sampler_whatever_their_filters(monkeypatch):
    """Filters do nothing at temperature 0 (as in make_sampler), so every greedy request of a
    batch holds the same sampler, which picks mx.argmax's token (natively on the CPU)."""
    from osaurus.engine import sampling

    sampler = make_request_sampler(SamplingParams())
    assert sampler is sampling.greedy
    assert make_request_sampler(SamplingParams(0.0, top_p=0.5, top_k=3)) is sampler
    logprobs = 4 * mx.random.normal((8, 49152), key=mx.random.key(3))
    assert mx.array_equal(sampler(logprobs), mx.argmax(logprobs, axis=-1)).item()
    assert mx.array_equal(sampler(logprobs.astype(mx.float16)),
                          mx.argmax(logprobs.astype(mx.float16), axis=-1)).item()  # fmt: skip
    monkeypatch.setattr(sampling, "kernels", lambda: None)  # no extension: MLX's own
    assert mx.array_equal(sampler(logprobs), mx.argmax(logprobs, axis=-1)).item()
