"""Requests a minute per API key: a token bucket per key (capacity: the limit; refilled at
limit/60 a second), so a client may burst up to its minute's budget and then goes at the rate.
Without API keys every client shares the one budget of the empty key."""

from __future__ import annotations

import math
import threading
import time


class RateLimiter:
    def __init__(self, per_minute: int, clock=time.monotonic):
        self.per_minute, self.clock = per_minute, clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, when)
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.per_minute > 0

    def take(self, key: str) -> float | None:
        """Take one request from `key`'s budget: None if allowed, else the seconds until one
        is free (for Retry-After)."""
        if not self.enabled:
            return None
        rate = self.per_minute / 60.0
        with self._lock:
            now = self.clock()
            tokens, then = self._buckets.get(key, (float(self.per_minute), now))
            tokens = min(float(self.per_minute), tokens + (now - then) * rate)
            if tokens >= 1.0:
                self._buckets[key] = (tokens - 1.0, now)
                return None
            self._buckets[key] = (tokens, now)
            return max(math.ceil((1.0 - tokens) / rate), 1)
