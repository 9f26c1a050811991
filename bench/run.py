"""`make bench`: osaurus against its peers, in one run, on this machine.

Every server runs alone (the machine has two cores), one after the other, on the same model and
BLAS. Results go to bench/results/: results.json (everything), requests.csv (one row per request),
summary.csv, summary.md (the tables the README quotes) and chart.png.

Environment: REQUESTS (default 20), MAX_TOKENS (128), LEVELS (1,4,8,16), PEERS ("llama.cpp" by
default: llama.cpp's own llama-server, built from source on first use; "" for none), SYNTHETIC
(random-weight models of real shapes, "1b,3b" by default), SYNTHETIC_REQUESTS (4),
SYNTHETIC_TOKENS (64), OUT (bench/results).
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
PREFILL_REQUESTS = 3
SYNTHETIC_REQUESTS = int(os.environ.get("SYNTHETIC_REQUESTS", "4"))  # per level
SYNTHETIC_TOKENS = int(os.environ.get("SYNTHETIC_TOKENS", "64"))


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
            "settings": f"{requests} requests per mode (in whole waves of the level), "
            f"max_tokens {max_tokens}, temperature 0, streaming; model {MODEL_ID}",
            "summaries": {},
            "multi_turn": {},
            "cold_start": {},
            "overhead": {},
            "prefill": {},
            "memory": {},
            "synthetic": {},
            "ratios": [],
        }

    def keep(self, target: str, mode: str, results: list[RequestResult], wall=None) -> dict:
        self.rows += results
        summary = report.summarize(results, wall)
        self.data["summaries"].setdefault(target, {})[mode] = summary
        failed = f", {summary['failed']} FAILED" if summary["failed"] else ""
        aggregate = f"  aggregate {summary['aggregate_tps']:6.1f} tok/s" if wall else ""
        print(
            f"  {target:24} {mode:15} TTFT p50 {summary['ttft_p50'] * 1000:7.0f} ms  "
            f"stream {summary['decode_tps_p50']:5.1f} tok/s{aggregate}{failed}",
            flush=True,
        )
        return summary

    async def levels_of(
        self, client, levels: list[int], requests: int = 0, max_tokens: int = 0
    ) -> None:
        """Each concurrency level in turn; the random-weight models pass fewer requests and
        tokens, and ignore EOS so that every server generates the same count."""
        synthetic = bool(requests)
        for level in levels:
            # Whole waves (20 requests at 16 in flight would leave 4 for a second wave, and most
            # of the level would run below 16): the multiple of the level at or above the count.
            waves = -(-(requests or self.requests) // level)
            results, wall = await workloads.concurrent(
                client,
                level,
                waves * level,
                max_tokens or self.max_tokens,
                ignore_eos=synthetic,
            )
            self.keep(client.name, f"concurrency-{level}", results, wall)

    async def cold(self, server: servers.Server, client) -> None:
        result, seconds = await workloads.cold_start(client, server.started_at, self.max_tokens)
        self.data["cold_start"][client.name] = seconds
        print(f"  {client.name:24} cold start {seconds:.1f} s (ok: {result.ok})", flush=True)

    @staticmethod
    def rss(server: servers.Server) -> int:
        return psutil.Process(server.process.pid).memory_info().rss

    def memory(self, label: str, server: servers.Server, before: int, model_dir: Path) -> None:
        """Resident memory the server grew by to load a model, against its weight files."""
        grown = self.rss(server) - before
        files = sum(f.stat().st_size for f in model_dir.glob("*.safetensors"))
        self.data["memory"][label] = {"rss_growth": grown, "safetensors": files}
        print(f"  memory for {label}: RSS +{grown / 1e6:.0f} MB, weights {files / 1e6:.0f} MB "
              f"({grown / files:.2f}x)", flush=True)  # fmt: skip

    async def prefill(self, client) -> None:
        results = await workloads.prefill(client, PREFILL_REQUESTS)
        self.rows += results
        ok = [r for r in results if r.ok and r.ttft]
        tps = statistics.median(r.prompt_tokens / r.ttft for r in ok) if ok else 0.0
        self.data["prefill"][client.name] = {
            "prompt_tokens": statistics.median(r.prompt_tokens for r in ok) if ok else 0,
            "prefill_tps_p50": tps,
            "failed": len(results) - len(ok),
        }
        print(f"  {client.name:24} prefill ~1000 tokens: {tps:6.0f} tok/s", flush=True)

    async def synthetic(self, key: str, llama: bool) -> None:
        """A random-weight model of real shape: osaurus and llama.cpp at 1 and 8 streams."""
        from bench import synthetic_models

        model_dir, gguf_path = synthetic_models.build(key)
        model_id = model_dir.name.lower()
        levels = [1, 8] if key == "1b" else [1]
        print(f"osaurus on {model_id}", flush=True)
        with servers.running(servers.osaurus(model_dir.parent, model_id, f"osaurus-{key}")) as s:
            client = RestClient(f"osaurus {key}", s.base_url, model_id)
            before = self.rss(s)
            await workloads.warm_up(client)
            self.memory(key, s, before, model_dir)
            await self.levels_of(client, levels, SYNTHETIC_REQUESTS, SYNTHETIC_TOKENS)
            await client.close()
        if llama:
            print(f"llama.cpp on the same shape ({gguf_path.name})", flush=True)
            with servers.running(servers.llama_server(gguf_path, model_id)) as s:
                client = RestClient(f"llama.cpp {key}", s.base_url, s.model)
                await workloads.warm_up(client)
                await self.levels_of(client, levels, SYNTHETIC_REQUESTS, SYNTHETIC_TOKENS)
                await client.close()
        self.data["synthetic"][key] = {
            "weights_bytes": sum(f.stat().st_size for f in model_dir.glob("*.safetensors")),
        }

    async def prompt_lookup(self, client) -> None:
        for mode, results in (await workloads.prompt_lookup(client, self.max_tokens)).items():
            self.keep(client.name, mode, results)

    async def multi_turn(self, client, label: str, session: str = "") -> None:
        results = await workloads.multi_turn(client, MULTI_TURN_TOKENS, session)
        self.rows += results
        self.data["multi_turn"][label] = [r.ttft for r in results]
        self.data["summaries"].setdefault(label, {})["multi-turn"] = report.summarize(results)
        turns = ", ".join(f"{r.ttft * 1000:.0f}" for r in results)
        print(f"  {label:24} multi-turn TTFT ms: {turns}", flush=True)

    async def overhead(self, server: servers.Server, rest: RestClient, grpc: GrpcClient) -> None:
        """REST and gRPC requests paired on the same prompt, alternating which goes first. On a
        machine with few cores the clients' own CPU competes with the server's, so the CPU time
        of this process (the clients) and of the server is counted per token for each path."""
        pairs = []
        cpu = {c.name: {"client_s": 0.0, "server_s": 0.0, "tokens": 0} for c in (rest, grpc)}
        for i in range(self.requests):
            messages = chat(f"(overhead {i}) {PROMPTS[i % len(PROMPTS)]}")
            clients = (grpc, rest) if i % 2 == 0 else (rest, grpc)
            done = {}
            for c in clients:
                client_before, server_before = _cpu_seconds(), _cpu_seconds(server.process.pid)
                done[c.name] = await c.chat(messages, self.max_tokens, "overhead", i)
                spent = cpu[c.name]
                spent["client_s"] += _cpu_seconds() - client_before
                spent["server_s"] += _cpu_seconds(server.process.pid) - server_before
                spent["tokens"] += done[c.name].completion_tokens
            self.rows += done.values()
            pairs.append((done[rest.name], done[grpc.name]))
        ok = [(r, g) for r, g in pairs if r.ok and g.ok]
        self.data["overhead"] = {
            "pairs": len(ok),
            "ttft_added_p50_ms": statistics.median((r.ttft - g.ttft) * 1000 for r, g in ok),
            "rest_ttft_p50_ms": statistics.median(r.ttft * 1000 for r, _ in ok),
            "grpc_ttft_p50_ms": statistics.median(g.ttft * 1000 for _, g in ok),
            "tps_ratio_p50": statistics.median(r.decode_tps / g.decode_tps for r, g in ok),
            "cpu_us_per_token": {
                name: {
                    "client": spent["client_s"] / max(1, spent["tokens"]) * 1e6,
                    "server": spent["server_s"] / max(1, spent["tokens"]) * 1e6,
                }
                for name, spent in cpu.items()
            },
        }
        print(f"  overhead REST vs gRPC: {self.data['overhead']}", flush=True)


def _cpu_seconds(pid: int | None = None) -> float:
    """User + system CPU time of a process (this one by default), all its threads."""
    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


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


async def bench(run: Run, peers: list[str], synthetic: list[str]) -> None:
    models, float32_model, gguf = servers.prepare_models()
    llama = "llama.cpp" in peers

    print("osaurus (4-bit on its native CPU kernel; REST bridge and gRPC)", flush=True)
    with servers.running(servers.osaurus(models, MODEL_ID)) as s:
        rest = RestClient("osaurus (REST)", s.base_url, MODEL_ID)
        grpc = GrpcClient("osaurus (gRPC)", s.grpc_target, MODEL_ID)
        before = run.rss(s)
        await run.cold(s, rest)
        run.memory("test model", s, before, models / MODEL_ID)
        await run.levels_of(rest, run.levels)
        await run.levels_of(grpc, [run.levels[0], 8] if 8 in run.levels else run.levels[:1])
        await run.prefill(rest)
        await run.prompt_lookup(rest)
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
        await run.overhead(s, rest, grpc)
        await rest.close()
        await grpc.close()

    print("osaurus on its float32 path (--float32 always: the policy before the kernel)")
    with servers.running(
        servers.osaurus(models, MODEL_ID, "osaurus-float32", "--float32", "always")
    ) as s:
        client = RestClient("osaurus float32", s.base_url, MODEL_ID)
        await workloads.warm_up(client)
        await run.levels_of(client, [1, 8])
        await client.close()

    print("mlx_lm.server (same weights in float32, same BLAS)", flush=True)
    with servers.running(servers.mlx_lm_server(float32_model)) as s:
        client = RestClient("mlx_lm.server", s.base_url, s.model)
        await run.cold(s, client)
        await run.levels_of(client, run.levels)
        await run.multi_turn(client, "mlx_lm.server")
        await client.close()

    if llama:
        print("llama.cpp (llama-server, 8 parallel slots, the GGUF)", flush=True)
        with servers.running(servers.llama_server(gguf, "smollm2")) as s:
            client = RestClient("llama.cpp", s.base_url, s.model)
            await run.cold(s, client)
            await run.levels_of(client, run.levels)
            await run.prefill(client)
            await run.multi_turn(client, "llama.cpp")
            await client.close()

    for key in synthetic:
        await run.synthetic(key, llama)

    print("mlx-lm in-process (no server)", flush=True)
    in_process_baseline(run, float32_model)


def ratios(run: Run) -> list[dict]:
    """The issue's targets, each a ratio of two figures from this run."""
    s, data = run.data["summaries"], run.data
    ours, llama = s.get("osaurus (REST)", {}), s.get("llama.cpp", {})
    mlx_lm, f32 = s.get("mlx_lm.server", {}), s.get("osaurus float32", {})
    out = []

    def add(name, detail, value, goal, met):
        out.append({"name": name, "detail": detail, "value": value, "goal": goal, "met": met})

    def ratio(a, b):
        return a / b if b else float("inf")

    def tps(summary, level):
        return summary.get(f"concurrency-{level}", {}).get("decode_tps_p50", 0)

    def aggregate(summary, level):
        return summary.get(f"concurrency-{level}", {}).get("aggregate_tps", 0)

    def best(summary):
        levels = [m.get("aggregate_tps", 0) for k, m in summary.items() if "concurrency" in k]
        return max(levels, default=0)

    if ours and llama:
        r = ratio(tps(ours, 1), tps(llama, 1))
        add("test model vs llama.cpp", "1 stream: decode tokens/s", r, ">= 1.0", r >= 1.0)
        r = ratio(ours["concurrency-1"]["ttft_p50"], llama["concurrency-1"]["ttft_p50"])
        add("test model vs llama.cpp", "1 stream: TTFT p50", r, "<= 1.0", r <= 1.0)
        pre = data["prefill"]
        if "osaurus (REST)" in pre and "llama.cpp" in pre:
            r = ratio(pre["osaurus (REST)"]["prefill_tps_p50"], pre["llama.cpp"]["prefill_tps_p50"])
            detail = "prefill tokens/s, ~1,000-token prompt"
            add("test model vs llama.cpp", detail, r, ">= 0.8", r >= 0.8)
        r = ratio(aggregate(ours, 8), best(llama))
        detail = "8 streams aggregate / llama.cpp's best aggregate"
        add("test model vs llama.cpp", detail, r, ">= 2.0", r >= 2.0)
    if ours and f32:
        r = ratio(tps(ours, 1), tps(f32, 1))
        add("test model vs our float32 path", "1 stream: decode tokens/s", r, ">= 4.0", r >= 4.0)
    if ours and mlx_lm:
        r = ratio(aggregate(ours, 8), aggregate(mlx_lm, 8))
        add("test model vs mlx_lm.server", "8 streams: aggregate tokens/s", r, ">= 3.0", r >= 3.0)
    if "concurrency-16" in ours:
        c8, c16 = aggregate(ours, 8), aggregate(ours, 16)
        ok = c16 >= c8 and ours["concurrency-16"]["failed"] == 0
        add(
            "osaurus", "16 streams: aggregate / 8 streams' (0 failed)", ratio(c16, c8), ">= 1.0", ok
        )
    for key, goal_1, goal_8 in (("1b", 1.0, 2.0), ("3b", 0.9, None)):
        mine, theirs = s.get(f"osaurus {key}", {}), s.get(f"llama.cpp {key}", {})
        name = f"{key} random vs llama.cpp"
        if mine and theirs:
            r = ratio(tps(mine, 1), tps(theirs, 1))
            add(name, "1 stream: decode tokens/s", r, f">= {goal_1}", r >= goal_1)
            if goal_8:
                r = ratio(aggregate(mine, 8), aggregate(theirs, 8))
                add(name, "8 streams: aggregate tokens/s", r, f">= {goal_8}", r >= goal_8)
        if key == "3b" and mine and data.get("read_bandwidth"):
            # Each decoded token reads every weight once: tokens/s x weight bytes / bandwidth.
            share = tps(mine, 1) * data["synthetic"][key]["weights_bytes"] / data["read_bandwidth"]
            detail = "1 stream: share of the bandwidth roofline"
            add("3b random", detail, share, ">= 0.6", share >= 0.6)
    for label, m in data["memory"].items():
        r = ratio(m["rss_growth"], m["safetensors"])
        add("memory", f"{label}: RSS growth on load / safetensors size", r, "<= 1.3", r <= 1.3)
    for kind in ("copy", "chat"):
        on, off = ours.get(f"lookup-{kind}-on"), ours.get(f"lookup-{kind}-off")
        if on and off:
            r = ratio(on["decode_tps_p50"], off["decode_tps_p50"])
            detail = f"1 stream, {kind} prompts: tokens/s with prompt lookup / without"
            goal = 1.3 if kind == "copy" else 0.95
            add("speculative decoding", detail, r, f">= {goal}", r >= goal)
    turns = data["multi_turn"]
    if "osaurus, session_id" in turns and "osaurus, no reuse" in turns:
        r = ratio(turns["osaurus, session_id"][-1], turns["osaurus, no reuse"][-1])
        add("osaurus", "turn 10 TTFT, session vs no reuse", r, "<= 0.3", r <= 0.3)
    overhead = data["overhead"]
    if overhead:
        added = overhead["ttft_added_p50_ms"]
        add("REST bridge", "TTFT p50 added vs gRPC (ms)", added, "<= 5", added <= 5)
        r = overhead["tps_ratio_p50"]
        add("REST bridge", "tokens/s vs gRPC", r, ">= 0.97", r >= 0.97)
    return out


def main() -> None:
    levels = [int(x) for x in os.environ.get("LEVELS", "1,4,8,16").split(",")]
    run = Run(
        int(os.environ.get("REQUESTS", "20")), int(os.environ.get("MAX_TOKENS", "128")), levels
    )
    peers = [p for p in os.environ.get("PEERS", "llama.cpp").split(",") if p]
    synthetic = [k for k in os.environ.get("SYNTHETIC", "1b,3b").split(",") if k]
    servers.WORK.mkdir(parents=True, exist_ok=True)
    from bench.kernel import read_bandwidth

    run.data["read_bandwidth"] = read_bandwidth()
    asyncio.run(bench(run, peers, synthetic))
    run.data["ratios"] = ratios(run)
    out = Path(os.environ.get("OUT", servers.ROOT / "bench" / "results"))
    report.write(out, run.data, run.rows)
    print()
    print(report.markdown(run.data))
    print(f"written to {out}/")


if __name__ == "__main__":
    main()
