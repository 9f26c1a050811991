"""CPU % per watcher: a busy core shows up, and watchers don't disturb each other."""

from __future__ import annotations

import os
import time

from osaurus.system import SystemMonitor


def _spin(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def test_busy_cpu_is_seen_by_every_watcher() -> None:
    first, second = SystemMonitor(), SystemMonitor()
    _spin(0.5)
    second.sample()  # would reset a shared baseline
    busy = first.sample()
    # One core of this machine's cores was spinning the whole interval.
    assert busy.cpu_percent > 100 / (2 * (os.cpu_count() or 1))
    assert busy.memory_total_bytes > busy.memory_used_bytes > 0 and busy.process_rss_bytes > 0
