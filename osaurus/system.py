"""Machine and process statistics (psutil), for SystemService and `osaurus-ctl system`."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

import psutil


@dataclass(frozen=True)
class SystemStats:
    cpu_percent: float
    memory_used_bytes: int
    memory_total_bytes: int
    process_rss_bytes: int
    timestamp: float


class SystemMonitor:
    def __init__(self) -> None:
        self._process = psutil.Process(os.getpid())
        psutil.cpu_percent(interval=None)  # the first reading is meaningless; prime it

    def sample(self) -> SystemStats:
        memory = psutil.virtual_memory()
        return SystemStats(
            cpu_percent=psutil.cpu_percent(interval=None),
            memory_used_bytes=memory.total - memory.available,
            memory_total_bytes=memory.total,
            process_rss_bytes=self._process.memory_info().rss,
            timestamp=time.time(),
        )
