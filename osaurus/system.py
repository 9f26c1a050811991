"""Machine and process statistics (psutil), for SystemService and `osaurus-ctl system`."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any

import psutil


@dataclass(frozen=True)
class SystemStats:
    cpu_percent: float
    memory_used_bytes: int
    memory_total_bytes: int
    process_rss_bytes: int
    timestamp: float


def _busy_and_total(times: Any) -> tuple[float, float]:  # psutil.cpu_times() namedtuple
    total = sum(times)
    idle = times.idle + getattr(times, "iowait", 0.0)
    return total - idle, total


class SystemMonitor:
    """One per watcher: CPU % is measured since this monitor's previous sample.

    (psutil.cpu_percent keeps one global baseline, so concurrent watchers would reset each other.)
    """

    def __init__(self) -> None:
        self._process = psutil.Process(os.getpid())
        self._last = _busy_and_total(psutil.cpu_times())

    def _cpu_percent(self) -> float:
        busy, total = _busy_and_total(psutil.cpu_times())
        last_busy, last_total = self._last
        self._last = (busy, total)
        elapsed = total - last_total
        return max(0.0, min(100.0, 100.0 * (busy - last_busy) / elapsed)) if elapsed > 0 else 0.0

    def sample(self) -> SystemStats:
        memory = psutil.virtual_memory()
        return SystemStats(
            cpu_percent=self._cpu_percent(),
            memory_used_bytes=memory.total - memory.available,
            memory_total_bytes=memory.total,
            process_rss_bytes=self._process.memory_info().rss,
            timestamp=time.time(),
        )
