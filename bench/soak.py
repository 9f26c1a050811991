"""`python -m bench.soak` (on demand, not part of `make bench`): one osaurus server with the
test model under 16 concurrent streaming clients for MINUTES minutes (default 30).

Each client loops: a prompt of mixed length (one to eight of the fixed prompts joined), a
streamed chat completion of up to 64 tokens; one request in five is cancelled after its first
few chunks (the client closes the stream), and one in three continues a session of its own (a
new session every few turns). Measured: failed requests (anything but a finished or a
deliberately cancelled stream), the server's RSS every 10 s, and TTFT per minute (p50, p99).

Writes bench/results/soak.{json,md} and soak.png. Environment: MINUTES (30), CLIENTS (16), OUT,
SERVER_FLAGS (for `osaurus serve`, e.g. "--kv-cache-mb 256").
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import statistics
import time
from pathlib import Path

import openai
import psutil

from bench.prompts import PROMPTS
from bench.servers import ROOT, WORK
from osaurus.child_server import start
from osaurus.config import default_cache_dir
from osaurus.models.default_model import MODEL_ID, ensure_default_model

RSS_EVERY_SECONDS = 10


async def client_loop(
    client: openai.AsyncOpenAI, index: int, deadline: float, records: list[dict]
) -> None:
    rng = random.Random(index)
    turn = 0
    while time.monotonic() < deadline:
        turn += 1
        prompt = " ".join(rng.sample(PROMPTS, rng.randint(1, 8)))
        cancel = rng.random() < 0.2
        extra = {}
        if rng.random() < 1 / 3:
            extra = {"extra_body": {"session_id": f"soak-{index}-{turn // 4}"}}
        record = {"start": time.monotonic(), "ttft": None, "outcome": "ok", "cancel": cancel}
        try:
            stream = await client.chat.completions.create(
                model=MODEL_ID,
                messages=[{"role": "user", "content": prompt}],
                max_tokens=64,
                stream=True,
                **extra,
            )
            chunks = 0
            async for chunk in stream:
                if chunk.choices and chunk.choices[0].delta.content:
                    record["ttft"] = record["ttft"] or time.monotonic() - record["start"]
                    chunks += 1
                    if cancel and chunks >= 3:
                        await stream.close()
                        record["outcome"] = "cancelled"
                        break
        except Exception as exc:  # counted: the soak's point is that there are none
            record["outcome"] = f"failed: {type(exc).__name__}: {exc}"[:300]
        records.append(record)


async def watch_rss(pid: int, deadline: float, samples: list[tuple[float, int]]) -> None:
    process, start = psutil.Process(pid), time.monotonic()
    while time.monotonic() < deadline:
        samples.append((time.monotonic() - start, process.memory_info().rss))
        await asyncio.sleep(RSS_EVERY_SECONDS)


async def soak(url: str, pid: int, minutes: float, clients: int) -> tuple[list, list, float]:
    client = openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="x", max_retries=0, timeout=300)
    began = time.monotonic()
    deadline = began + minutes * 60
    records: list[dict] = []
    rss: list[tuple[float, int]] = []
    await asyncio.gather(
        watch_rss(pid, deadline, rss),
        *(client_loop(client, i, deadline, records) for i in range(clients)),
    )
    return records, rss, began


def per_minute(records: list[dict], began: float) -> list[dict]:
    minutes: dict[int, list[float]] = {}
    for r in records:
        if r["ttft"] is not None:
            minutes.setdefault(int((r["start"] - began) // 60), []).append(r["ttft"])
    out = []
    for minute, ttfts in sorted(minutes.items()):
        ttfts.sort()
        p99 = ttfts[min(len(ttfts) - 1, int(0.99 * len(ttfts)))]
        out.append({"minute": minute, "requests": len(ttfts), "p50": statistics.median(ttfts),
                    "p99": p99})  # fmt: skip
    return out


def plot(minutes: list[dict], rss: list[tuple[float, int]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 6), sharex=True)
    top.plot([m["minute"] for m in minutes], [m["p99"] for m in minutes], label="p99 TTFT")
    top.plot([m["minute"] for m in minutes], [m["p50"] for m in minutes], label="p50 TTFT")
    top.set_ylabel("seconds")
    top.legend()
    bottom.plot([t / 60 for t, _ in rss], [b / 1e6 for _, b in rss])
    bottom.set_ylabel("server RSS, MB")
    bottom.set_xlabel("minute")
    fig.tight_layout()
    fig.savefig(path)


def main() -> None:
    import matplotlib  # noqa: F401  (the chart at the end: fail now, not after the run)

    minutes = float(os.environ.get("MINUTES", "30"))
    clients = int(os.environ.get("CLIENTS", "16"))
    models = WORK / "models"
    ensure_default_model(models, default_cache_dir(), log=print)
    flags = os.environ.get("SERVER_FLAGS", "").split()
    server = start(models, WORK / "osaurus-soak.log", "--no-default-model", *flags)
    try:
        records, rss, began = asyncio.run(
            soak(server.http_url, server.process.pid, minutes, clients)
        )
    finally:
        server.stop()
    failed = [r["outcome"] for r in records if r["outcome"].startswith("failed")]
    after_two = next((b for t, b in rss if t >= 120), rss[0][1])
    data = {
        "minutes": minutes,
        "clients": clients,
        "server_flags": " ".join(flags),
        "requests": len(records),
        "cancelled": sum(r["outcome"] == "cancelled" for r in records),
        "failed": len(failed),
        "failures": failed[:20],
        "rss_after_2_min": after_two,
        "rss_at_end": rss[-1][1],
        "rss_change": rss[-1][1] / after_two - 1,
        "rss_halfway": next(b for t, b in rss if t >= rss[-1][0] / 2),
        "ttft_per_minute": per_minute(records, began),
        "rss": rss,
    }
    write_results(data, Path(os.environ.get("OUT", ROOT / "bench" / "results")))


def write_results(data: dict, out: Path) -> None:
    """soak.json, soak.md (printed too) and soak.png in `out`."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "soak.json").write_text(json.dumps(data, indent=2) + "\n")
    rss, timeline = data["rss"], data["ttft_per_minute"]
    p99s = [m["p99"] for m in timeline]
    flags = f" (`osaurus serve {data['server_flags']}`)" if data.get("server_flags") else ""
    lines = [
        f"Soak: {data['clients']} streaming clients for {data['minutes']:g} min on the test "
        f"model{flags}, one run.",
        "",
        "| measure | value | target |",
        "| --- | ---: | ---: |",
        f"| requests (cancelled on purpose) | {data['requests']} ({data['cancelled']}) | |",
        f"| failed requests | {data['failed']} | 0 |",
        f"| server RSS after 2 min | {data['rss_after_2_min'] / 1e6:.0f} MB | |",
        f"| server RSS at the end | {data['rss_at_end'] / 1e6:.0f} MB | within 10% |",
        f"| RSS change after 2 min | {100 * data['rss_change']:+.1f}% | |",
        "| RSS change over the second half | "
        f"{100 * (data['rss_at_end'] / data['rss_halfway'] - 1):+.1f}% | |",
        f"| p99 TTFT per minute: first, median, last | {p99s[0]:.2f} / "
        f"{statistics.median(p99s):.2f} / {p99s[-1]:.2f} s | steady |",
    ]
    (out / "soak.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    plot(timeline, rss, out / "soak.png")


if __name__ == "__main__":
    main()
