"""Summaries and ratios of one bench run, written as JSON, CSV, a Markdown table and a chart."""

from __future__ import annotations

import csv
import json
import os
import statistics
from pathlib import Path

from bench.clients import RequestResult


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def summarize(results: list[RequestResult], wall: float | None = None) -> dict:
    ok = [r for r in results if r.ok]
    ttft = [r.ttft for r in ok]
    tps = [r.decode_tps for r in ok]
    summary = {
        "requests": len(results),
        "failed": len(results) - len(ok),
        "ttft_avg": statistics.fmean(ttft) if ttft else 0.0,
        "ttft_p50": percentile(ttft, 0.5),
        "ttft_p95": percentile(ttft, 0.95),
        "total_avg": statistics.fmean([r.total for r in ok]) if ok else 0.0,
        "total_p50": percentile([r.total for r in ok], 0.5),
        "total_p95": percentile([r.total for r in ok], 0.95),
        "decode_tps_avg": statistics.fmean(tps) if tps else 0.0,
        "decode_tps_p50": percentile(tps, 0.5),
        "chars_per_second_avg": statistics.fmean([r.chars_per_second for r in ok]) if ok else 0.0,
        "completion_tokens": sum(r.completion_tokens for r in ok),
    }
    if wall:
        summary["wall_seconds"] = wall
        summary["aggregate_tps"] = summary["completion_tokens"] / wall
    return summary


def save_result(name: str, result: object, text: str) -> None:
    """A microbenchmark's result as <name>.json and <name>.md in bench/results (or $OUT), and
    its Markdown on stdout."""
    out = Path(os.environ.get("OUT", Path(__file__).parent / "results"))
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / f"{name}.md").write_text(text)
    print(text)


def write(out: Path, run: dict, rows: list[RequestResult]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(run, indent=2))
    with open(out / "requests.csv", "w", newline="") as f:
        fields = list(rows[0].row()) if rows else []
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(r.row() for r in rows)
    with open(out / "summary.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["target", "mode", *SUMMARY_FIELDS])
        for target, modes in run["summaries"].items():
            for mode, s in modes.items():
                writer.writerow([target, mode, *(round(s.get(k, 0.0), 4) for k in SUMMARY_FIELDS)])
    (out / "summary.md").write_text(markdown(run))
    chart(run, out / "chart.png")


SUMMARY_FIELDS = [
    "requests",
    "failed",
    "ttft_p50",
    "ttft_p95",
    "decode_tps_p50",
    "aggregate_tps",
    "total_p50",
    "chars_per_second_avg",
]


def markdown(run: dict) -> str:
    lines = [f"Bench run {run['started']} on {run['machine']}; {run['settings']}", ""]
    lines += [
        "| target | mode | ok/total | TTFT p50 | TTFT p95 | tokens/s per stream (p50) "
        "| aggregate tokens/s |",
        "|---|---|---|---|---|---|---|",
    ]
    for target, modes in run["summaries"].items():
        for mode, s in modes.items():
            if mode == "multi-turn":
                continue
            # One request at a time (prefill, prompt lookup): no aggregate to speak of.
            aggregate = f"{s['aggregate_tps']:.1f}" if "aggregate_tps" in s else "-"
            lines.append(
                f"| {target} | {mode} | {s['requests'] - s['failed']}/{s['requests']} "
                f"| {s['ttft_p50'] * 1000:.0f} ms | {s['ttft_p95'] * 1000:.0f} ms "
                f"| {s['decode_tps_p50']:.1f} | {aggregate} |"
            )
    if run.get("multi_turn"):
        lines += ["", "Multi-turn TTFT per turn (ms):", ""]
        names = list(run["multi_turn"])
        lines += ["| turn | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
        turns = len(next(iter(run["multi_turn"].values())))
        for t in range(turns):
            cells = [f"{run['multi_turn'][n][t] * 1000:.0f}" for n in names]
            lines.append(f"| {t + 1} | " + " | ".join(cells) + " |")
    if run.get("cold_start"):
        lines += [
            "",
            "Cold start (process start to first token): "
            + ", ".join(f"{k} {v:.1f} s" for k, v in run["cold_start"].items()),
        ]
    if run.get("prefill"):
        lines += [
            "",
            "Prefill of a ~1,000-token prompt (prompt tokens / TTFT, p50): "
            + ", ".join(f"{k} {v['prefill_tps_p50']:.0f} tok/s" for k, v in run["prefill"].items()),
        ]
    if run.get("memory"):
        lines += [
            "",
            "Memory to load a 4-bit model (server RSS growth vs weight files): "
            + ", ".join(
                f"{k} +{v['rss_growth'] / 1e6:.0f} MB vs {v['safetensors'] / 1e6:.0f} MB"
                for k, v in run["memory"].items()
            ),
        ]
    cpu = run.get("overhead", {}).get("cpu_us_per_token")
    if cpu:
        lines += [
            "",
            "CPU per generated token, REST vs gRPC at one stream (overhead mode; the clients run "
            "on the same cores): "
            + ", ".join(
                f"{k}: client {v['client']:.0f} us, server {v['server']:.0f} us"
                for k, v in cpu.items()
            ),
        ]
    if run.get("read_bandwidth"):
        lines += ["", f"Memory read bandwidth, measured: {run['read_bandwidth'] / 1e9:.1f} GB/s"]
    if run.get("ratios"):
        lines += ["", "| target | figure | value | goal | met |", "|---|---|---|---|---|"]
        for r in run["ratios"]:
            lines.append(
                f"| {r['name']} | {r['detail']} | {r['value']:.3g} | {r['goal']} "
                f"| {'yes' if r['met'] else 'no'} |"
            )
    return "\n".join(lines) + "\n"


def chart(run: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(16, 4.8))
    targets = [
        t
        for t in run["summaries"]
        if any(m.startswith("concurrency-") for m in run["summaries"][t])
    ]
    levels = sorted(
        {
            int(m.split("-")[1])
            for t in targets
            for m in run["summaries"][t]
            if m.startswith("concurrency-")
        }
    )
    width = 0.8 / max(len(targets), 1)
    for i, target in enumerate(targets):
        modes = run["summaries"][target]
        xs = [j + i * width for j in range(len(levels))]
        agg = [modes.get(f"concurrency-{c}", {}).get("aggregate_tps", 0) for c in levels]
        ttft = [modes.get(f"concurrency-{c}", {}).get("ttft_p50", 0) for c in levels]
        axes[0].bar(xs, agg, width, label=target)
        axes[1].bar(xs, ttft, width, label=target)
        for x, level, height in zip(xs, levels, agg, strict=True):
            failed = modes.get(f"concurrency-{level}", {}).get("failed", 0)
            if failed:  # a server that drops requests must not look fast
                axes[0].text(x, height, f"{failed}\nfailed", ha="center", va="bottom", fontsize=7)
    for ax, title in ((axes[0], "aggregate completion tokens/s"), (axes[1], "TTFT p50 (s)")):
        ax.set_xticks([j + width * (len(targets) - 1) / 2 for j in range(len(levels))])
        ax.set_xticklabels([f"{c} streams" for c in levels])
        ax.set_title(title)
        ax.legend(fontsize=8)
    for name, ttfts in run.get("multi_turn", {}).items():
        axes[2].plot(range(1, len(ttfts) + 1), ttfts, marker="o", label=name)
    axes[2].set_title("multi-turn: TTFT per turn (s)")
    axes[2].set_xlabel("turn")
    axes[2].legend(fontsize=8)
    fig.suptitle(f"osaurus bench, {run['started']}, {run['machine']}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
