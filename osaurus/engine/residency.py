"""Which models stay in memory: keep-alive after last use, a memory budget, a count limit.

Like Ollama's keep_alive and LM Studio's TTL: a model unloads once it has been idle for its
keep-alive (the server default, or what the latest request asked for: 0 unloads right after the
request, a negative value keeps it loaded). Loading a model that would not fit the memory budget,
or would pass the loaded-models limit, first unloads the least recently used idle models; a model
with requests running is never unloaded from under them.
Pure bookkeeping on monotonic times: the engine thread calls it and does the unloading.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from osaurus.errors import ResourceExhausted


@dataclass
class Residency:
    memory_bytes: int
    keep_alive: float | None  # seconds idle before unloading; None: never
    last_used: float = field(default_factory=time.monotonic)
    busy: bool = False  # requests are running on it

    def expires_at(self) -> float | None:
        if self.busy or self.keep_alive is None:
            return None
        return self.last_used + self.keep_alive


# Keep-alives this long (or infinite) mean forever: a deadline further out would overflow the
# timestamps and timers it is turned into.
FOREVER_SECONDS = 100 * 365 * 24 * 3600.0


def keep_alive_seconds(value: float | None, default: float | None) -> float | None:
    """A request's keep-alive: None takes the default; negative, or a century or more, means
    forever."""
    if value is None:
        return default
    return None if value < 0 or value >= FOREVER_SECONDS else value


class ResidencyPolicy:
    def __init__(self, memory_budget: int, max_models: int = 0):
        self.memory_budget = memory_budget
        self.max_models = max_models  # 0: no count limit

    def expired(self, models: dict[str, Residency], now: float) -> list[str]:
        return [
            name
            for name, r in models.items()
            if (deadline := r.expires_at()) is not None and deadline <= now
        ]

    def next_deadline(self, models: dict[str, Residency]) -> float | None:
        deadlines = [d for r in models.values() if (d := r.expires_at()) is not None]
        return min(deadlines, default=None)

    def make_room(self, incoming: str, incoming_bytes: int, models: dict[str, Residency]):
        """The models to unload (least recently used first) before loading `incoming`."""
        idle = sorted((r.last_used, name) for name, r in models.items() if not r.busy)
        evict: list[str] = []
        used = sum(r.memory_bytes for r in models.values())
        count = len(models)

        def over() -> bool:
            too_many = self.max_models and count + 1 > self.max_models
            return bool(too_many) or used + incoming_bytes > self.memory_budget

        while over() and idle:
            _, name = idle.pop(0)
            evict.append(name)
            used -= models[name].memory_bytes
            count -= 1
        if over():
            raise ResourceExhausted(
                f"cannot load model {incoming!r} (~{incoming_bytes / 2**30:.1f} GiB): "
                f"{count} loaded model(s) are busy and use {used / 2**30:.1f} GiB of the "
                f"{self.memory_budget / 2**30:.1f} GiB model memory budget"
                + (f" (at most {self.max_models} loaded)" if self.max_models else "")
                + "; retry when they finish, or unload one",
                field="model",
            )
        return evict
