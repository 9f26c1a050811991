"""`python -m bench.dashboard` (part of `make bench`): the dashboard in Debian's chromium
(Playwright), against one osaurus server with the test model.

- Page weight: the bytes of every file the first load of /ui/ fetches (before any model runs).
- First paint: first-contentful-paint of a cold load (a new browser context each time), and
  when the status page shows the server's version (its first API answer), medians.
- Memory over time: the page's JS heap (after a forced GC) while the Monitor charts live
  stats, sampled every 30 s for MINUTES minutes: the fixed windows should keep it flat.

Writes bench/results/dashboard.{json,md}. Environment: MINUTES (5), LOADS (5), OUT.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from pathlib import Path

from playwright.sync_api import sync_playwright

from bench.servers import ROOT, WORK
from osaurus.child_server import start
from osaurus.config import default_cache_dir
from osaurus.models.default_model import ensure_default_model

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--js-flags=--expose-gc",
    "--enable-precise-memory-info",
]
SAMPLE_SECONDS = 30
WINDOW_SECONDS = 300  # the Monitor keeps 300 samples, one a second


def cold_load(browser, url: str) -> dict[str, float]:
    context = browser.new_context()
    page = context.new_page()
    page.goto(url)
    page.get_by_test_id("status-version").wait_for()
    shown = page.evaluate("performance.now()")
    figures = page.evaluate(
        """() => {
        const paint = performance.getEntriesByName('first-contentful-paint')[0];
        const files = [...performance.getEntriesByType('navigation'),
                       ...performance.getEntriesByType('resource')];
        const ui = files.filter((f) => new URL(f.name).pathname.startsWith('/ui/'));
        return {fcp: paint ? paint.startTime : -1,
                bytes: ui.reduce((sum, f) => sum + f.decodedBodySize, 0),
                files: ui.length};
    }"""
    )
    context.close()
    return {**figures, "status_shown": shown}


def heap_over_time(browser, url: str, minutes: float) -> list[tuple[float, int]]:
    page = browser.new_page()
    page.goto(url + "#monitor")
    page.get_by_test_id("monitor-cpu").wait_for()
    samples, start = [], time.monotonic()
    while True:
        elapsed = time.monotonic() - start
        page.evaluate("window.gc && window.gc()")
        samples.append((elapsed, page.evaluate("performance.memory.usedJSHeapSize")))
        if elapsed >= minutes * 60:
            return samples
        time.sleep(SAMPLE_SECONDS)


def main() -> None:
    minutes = float(os.environ.get("MINUTES", "5"))
    loads = int(os.environ.get("LOADS", "5"))
    models = WORK / "models"
    ensure_default_model(models, default_cache_dir(), log=print)
    server = start(models, WORK / "osaurus-dashboard.log", "--no-default-model")
    url = f"{server.http_url}/ui/"
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
            cold_load(browser, url)  # the server's first answers warm up
            runs = [cold_load(browser, url) for _ in range(loads)]
            heap = heap_over_time(browser, url, minutes)
            browser.close()
    finally:
        server.stop()
    data = {
        "page_bytes": runs[0]["bytes"],
        "page_files": runs[0]["files"],
        "first_contentful_paint_ms": statistics.median(r["fcp"] for r in runs),
        "status_shown_ms": statistics.median(r["status_shown"] for r in runs),
        "loads": loads,
        "minutes": minutes,
        "heap_bytes": heap,
    }
    out = Path(os.environ.get("OUT", ROOT / "bench" / "results"))
    out.mkdir(parents=True, exist_ok=True)
    (out / "dashboard.json").write_text(json.dumps(data, indent=2) + "\n")
    lines = report(data)
    (out / "dashboard.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def report(data: dict) -> list[str]:
    """The table of a run. The charts' windows fill in their first five minutes (300 samples),
    so the heap is compared from then on, and over the run's second half."""
    heap = data["heap_bytes"]
    full = next((h for t, h in heap if t >= WINDOW_SECONDS), heap[0][1])
    half = next(h for t, h in heap if t >= heap[-1][0] / 2)
    end = heap[-1][1]
    return [
        f"The dashboard in chromium (headless), one osaurus server on this machine; medians of "
        f"{data['loads']} cold loads; the Monitor page live for {data['minutes']:g} min.",
        "",
        "| measure | value | target |",
        "| --- | ---: | ---: |",
        f"| page weight (/ui/, {data['page_files']} files) | {data['page_bytes'] / 1000:.0f} kB "
        "| < 300 kB |",
        f"| first contentful paint | {data['first_contentful_paint_ms']:.0f} ms | < 300 ms |",
        f"| status shown (first API answer) | {data['status_shown_ms']:.0f} ms | |",
        f"| JS heap once the charts' windows are full (5 min) | {full / 1e6:.2f} MB | |",
        f"| JS heap at the end | {end / 1e6:.2f} MB | |",
        f"| growth after the windows filled | {100 * (end / full - 1):+.1f}% | flat |",
        f"| growth over the second half of the run | {100 * (end / half - 1):+.1f}% | flat |",
    ]


if __name__ == "__main__":
    main()
