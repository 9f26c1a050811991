"""`make bench`: osaurus against its peers, in one run, on this machine.

Every server runs alone (the machine has two cores), one after the other, on the same model and
BLAS. Results go to bench/results/: results.json (everything), requests.csv (one row per request),
summary.csv, summary.md (the tables the README quotes) and chart.png.

Environment: REQUESTS (default 20), MAX_TOKENS (128), LEVELS (1,4,8,16), PEERS (add
"llama.cpp" to also start llama-cpp-python's server on the GGUF), OUT (bench/results).
"""

from __future__ import annotations

from osaurus.engine.blas import preload_blas

preload_blas()  # before anything imports mlx: the in-process baseline runs on OpenBLAS too

import asyncio  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from datetime import UTC, datetime  # noqa: E402
from pathlib import Path  # noqa: E402

import psutil  # noqa: E402

from bench import report, servers, workloads  # noqa: E402
from bench.clients import GrpcClient, RequestResult, RestClient  # noqa: E402
from bench.prompts import PROMPTS, chat  # noqa: E402
from osaurus.models.default_model import MODEL_ID  # noqa: E402

MULTI_TURN_TOKENS = 64


def machine() -> str:
    memory = psutil.virtual_memory().total / 2**30
    return f"{platform.machine()}, {os.cpu_count()} cores, {memory:.0f} GiB, {platform.system()}"


class Run:
    def __init__(self, requests: int, max_tokens: int, levels: list[int]):
        self.requests, self.max_tokens, self.levels = requests, max_tokens, levels
        self.rows: list[RequestResult] = []
        self.data: dict = {
            "started": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "machine": machine(),
            "settings": f"{requests} requests per mode, max_tokens {max_tokens}, temperature 0, "
            f"streaming; model {MODEL_ID}",
            "summaries": {},
            "multi_turn": {},
            "cold_start": {},
            "overhead": {},
            "ratios": [],
        }

    def keep(self, target: str, mode: str, results: list[RequestResult], wall=None) -> dict:
        self.rows += results
        summary = report.summarize(results, wall)
        self.data["summaries"].setdefault(target, {})[mode] = summary
        failed = f", {summary['failed']} FAILED" if summary["failed"] else ""
        print(
            f"  {target:24} {mode:15} TTFT p50 {summary['ttft_p50'] * 1000:7.0f} ms  "
            f"stream {summary['decode_tps_p50']:5.1f} tok/s  "
            f"aggregate {summary.get('aggregate_tps', 0):6.1f} tok/s{failed}",
            flush=True,
        )
        return summary

    async def levels_of(self, client, levels: list[int]) -> None:
        for level in levels:
            results, wall = await workloads.concurrent(
                client, level, max(self.requests, level), self.max_tokens
            )
            self.keep(client.name, f"concurrency-{level}", results, wall)

    async def cold(self, server: servers.Server, client) -> None:
        result, seconds = await workloads.cold_start(client, server.started_at, self.max_tokens)
        self.data["cold_start"][client.name] = seconds
        print(f"  {client.name:24} cold start {seconds:.1f} s (ok: {result.ok})", flush=True)

    async def multi_turn(self, client, label: str, session: str = "") -> None:
        results = await workloads.multi_turn(client, MULTI_TURN_TOKENS, session)
        self.rows += results
        self.data["multi_turn"][label] = [r.ttft for r in results]
        self.data["summaries"].setdefault(label, {})["multi-turn"] = report.summarize(results)
        turns = ", ".join(f"{r.ttft * 1000:.0f}" for r in results)
        print(f"  {label:24} multi-turn TTFT ms: {turns}", flush=True)

    async def overhead(self, rest: RestClient, grpc: GrpcClient) -> None:
        """REST and gRPC requests paired on the same prompt, alternating which goes first."""
        pairs = []
        for i in range(self.requests):
            messages = chat(f"(overhead {i}) {PROMPTS[i % len(PROMPTS)]}")
            clients = (grpc, rest) if i % 2 == 0 else (rest, grpc)
            done = {c.name: await c.chat(messages, self.max_tokens, "overhead", i) for c in clients}
            self.rows += done.values()
            pairs.append((done[rest.name], done[grpc.name]))
        ok = [(r, g) for r, g in pairs if r.ok and g.ok]
        self.data["overhead"] = {
            "pairs": len(ok),
            "ttft_added_p50_ms": statistics.median((r.ttft - g.ttft) * 1000 for r, g in ok),
            "rest_ttft_p50_ms": statistics.median(r.ttft * 1000 for r, _ in ok),
            "grpc_ttft_p50_ms": statistics.median(g.ttft * 1000 for _, g in ok),
            "tps_ratio_p50": statistics.median(r.decode_tps / g.decode_tps for r, g in ok),
        }
        print(f"  overhead REST vs gRPC: {self.data['overhead']}", flush=True)


def in_process_baseline(run: Run, float32_model: Path) -> None:
    """mlx-lm's own generate loop in this process: no server, no transport."""
    from mlx_lm import load, stream_generate

    model, tokenizer = load(str(float32_model))
    for _ in stream_generate(model, tokenizer, "Hello!", max_tokens=4):  # warm up
        pass
    results = []
    for i in range(run.requests):
        prompt = tokenizer.apply_chat_template(
            chat(f"(in-process {i}) {PROMPTS[i % len(PROMPTS)]}"), add_generation_prompt=True
        )
        result = RequestResult("mlx-lm in-process", "concurrency-1", i, ok=True)
        start = time.perf_counter()
        text = []
        for response in stream_generate(model, tokenizer, prompt, max_tokens=run.max_tokens):
            if response.text and not text:
                result.ttft = time.perf_counter() - start
            text.append(response.text)
            result.completion_tokens = response.generation_tokens
            result.prompt_tokens = response.prompt_tokens
        result.total = time.perf_counter() - start
        result.text = "".join(text)
        result.chars = len(result.text)
        results.append(result)
    run.keep("mlx-lm in-process", "concurrency-1", results, sum(r.total for r in results))


async def bench(run: Run, peers: list[str]) -> None:
    models, float32_model, gguf = servers.prepare_models()

    print("osaurus (REST bridge and gRPC, defaults)", flush=True)
    with servers.running(servers.osaurus(models, MODEL_ID)) as s:
        rest = RestClient("osaurus (REST)", s.base_url, MODEL_ID)
        grpc = GrpcClient("osaurus (gRPC)", s.grpc_target, MODEL_ID)
        await run.cold(s, rest)
        await run.levels_of(rest, run.levels)
        await run.levels_of(grpc, [run.levels[0], 8] if 8 in run.levels else run.levels[:1])
        await run.multi_turn(rest, "osaurus, session_id", session="bench-session")
        await rest.close()
        await grpc.close()

    print("osaurus without KV reuse (--no-prefix-cache, no session)", flush=True)
    with servers.running(
        servers.osaurus(models, MODEL_ID, "osaurus-no-reuse", "--no-prefix-cache")
    ) as s:
        rest = RestClient("osaurus (REST)", s.base_url, MODEL_ID)
        grpc = GrpcClient("osaurus (gRPC)", s.grpc_target, MODEL_ID)
        await workloads.warm_up(rest)
        await run.multi_turn(rest, "osaurus, no reuse")
        await run.overhead(rest, grpc)
        await rest.close()
        await grpc.close()

    print("mlx_lm.server (same weights in float32, same BLAS)", flush=True)
    with servers.running(servers.mlx_lm_server(float32_model)) as s:
        client = RestClient("mlx_lm.server", s.base_url, s.model)
        await run.cold(s, client)
        await run.levels_of(client, run.levels)
        await run.multi_turn(client, "mlx_lm.server")
        await client.close()

    if "llama.cpp" in peers:
        print("llama.cpp (llama-cpp-python server, the GGUF)", flush=True)
        with servers.running(servers.llama_cpp_server(gguf)) as s:
            client = RestClient("llama.cpp", s.base_url, s.model)
            await run.cold(s, client)
            await run.levels_of(client, run.levels)
            await run.multi_turn(client, "llama.cpp")
            await client.close()

    print("mlx-lm in-process (no server)", flush=True)
    in_process_baseline(run, float32_model)


def ratios(run: Run) -> list[dict]:
    """The issue's targets, each a ratio of two figures from this run."""
    s = run.data["summaries"]
    ours, peer = s.get("osaurus (REST)", {}), s.get("mlx_lm.server", {})
    out = []

    def add(name, detail, value, goal, met):
        out.append({"name": name, "detail": detail, "value": value, "goal": goal, "met": met})

    def ratio(a, b):
        return a / b if b else float("inf")

    if "concurrency-1" in ours and "concurrency-1" in peer:
        r = ratio(ours["concurrency-1"]["decode_tps_p50"], peer["concurrency-1"]["decode_tps_p50"])
        add("vs mlx_lm.server", "1 stream: tokens/s ratio", r, ">= 1.25", r >= 1.25)
        r = ratio(ours["concurrency-1"]["ttft_p50"], peer["concurrency-1"]["ttft_p50"])
        add("vs mlx_lm.server", "1 stream: TTFT p50 ratio", r, "<= 0.8", r <= 0.8)
    if "concurrency-8" in ours and "concurrency-8" in peer:
        r = ratio(ours["concurrency-8"]["aggregate_tps"], peer["concurrency-8"]["aggregate_tps"])
        ok = r >= 1.5 and ours["concurrency-8"]["failed"] == 0
        add("vs mlx_lm.server", "8 streams: aggregate tokens/s ratio, none failed", r, ">= 1.5", ok)
    if "concurrency-16" in ours:
        failed = ours["concurrency-16"]["failed"]
        add("osaurus", "16 streams: failed requests", failed, "0", failed == 0)
    turns = run.data["multi_turn"]
    if "osaurus, session_id" in turns and "osaurus, no reuse" in turns:
        r = ratio(turns["osaurus, session_id"][-1], turns["osaurus, no reuse"][-1])
        add("osaurus", "turn 10 TTFT, session vs no reuse", r, "<= 0.3", r <= 0.3)
    overhead = run.data["overhead"]
    if overhead:
        added = overhead["ttft_added_p50_ms"]
        add("REST bridge", "TTFT p50 added vs gRPC (ms)", added, "<= 5", added <= 5)
        tps = overhead["tps_ratio_p50"]
        add("REST bridge", "tokens/s vs gRPC", tps, ">= 0.97", tps >= 0.97)
    llama = s.get("llama.cpp", {})
    if llama and "concurrency-8" in ours:
        best = max(m.get("aggregate_tps", 0) for m in llama.values())
        r = ratio(ours["concurrency-8"]["aggregate_tps"], best)
        add(
            "vs llama.cpp",
            "8 streams aggregate / llama.cpp's best aggregate",
            r,
            ">= 1.6",
            r >= 1.6,
        )
    return out


def main() -> None:
    levels = [int(x) for x in os.environ.get("LEVELS", "1,4,8,16").split(",")]
    run = Run(
        int(os.environ.get("REQUESTS", "20")), int(os.environ.get("MAX_TOKENS", "128")), levels
    )
    peers = [p for p in os.environ.get("PEERS", "").split(",") if p]
    servers.WORK.mkdir(parents=True, exist_ok=True)
    asyncio.run(bench(run, peers))
    run.data["ratios"] = ratios(run)
    out = Path(os.environ.get("OUT", servers.ROOT / "bench" / "results"))
    report.write(out, run.data, run.rows)
    print()
    print(report.markdown(run.data))
    print(f"written to {out}/")


if __name__ == "__main__":
    main()
