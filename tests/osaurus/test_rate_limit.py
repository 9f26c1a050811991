"""Requests a minute per key: a burst up to the limit, then one as each refills."""

from __future__ import annotations

from osaurus.rate_limit import RateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_key_bursts_to_its_limit_then_waits_for_refill() -> None:
    clock = Clock()
    limiter = RateLimiter(3, clock=clock)
    assert [limiter.take("a") for _ in range(3)] == [None, None, None]
    assert limiter.take("a") == 20  # 3 a minute: one every 20 s
    assert limiter.take("b") is None  # each key its own budget
    clock.now = 19.0
    assert limiter.take("a") == 1
    clock.now = 20.5
    assert limiter.take("a") is None and limiter.take("a") == 20


def test_zero_is_no_limit() -> None:
    limiter = RateLimiter(0)
    assert not limiter.enabled and all(limiter.take("a") is None for _ in range(1000))
