"""osaurus against llama.cpp's llama-server, both up at once and taking turns (bench/paired.py).

`make bench` runs each server alone, one after the other: on a shared VM whose speed changes by
up to 2x for minutes at a time, its osaurus/llama.cpp ratios can be off by as much. This runs the
two side by side on the same model, one round at a time in rotating order, and reports the
paired ratios: the figures for the native-kernel issue's llama.cpp targets that this machine's
noise cannot move. The test model (REST, chat prompts, 128 tokens) at 1, 8 and 16 streams, then
the random-weight 1B shape at 1 and 8 and the 3B at 1 (`SYNTHETIC_TOKENS`, EOS ignored).

    python -m bench.vs_llama        # ROUNDS=8 SYNTHETIC=1b,3b (PEERS without llama.cpp: skipped)
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from contextlib import ExitStack
from pathlib import Path

from bench import paired, servers
from bench.clients import RestClient
from bench.run import SYNTHETIC_TOKENS, machine
from osaurus.config import ENV_PREFIX
from osaurus.models.default_model import MODEL_ID

RESULTS = Path(os.environ.get("OUT", Path(__file__).parent / "results"))
ROUNDS = int(os.environ.get("ROUNDS", "8"))
SYNTHETIC = [k for k in os.environ.get("SYNTHETIC", "1b,3b").split(",") if k]
MAX_TOKENS = 128
LLAMA = "llama.cpp"
OSAURUS = "osaurus (REST)"


async def _side_by_side(
    ours: servers.Server, model_id: str, llama: servers.Server, levels: list[int], synthetic: bool
) -> dict:
    with ExitStack() as stack:
        ours = stack.enter_context(servers.running(ours))
        llama = stack.enter_context(servers.running(llama))
        clients = {
            OSAURUS: RestClient(OSAURUS, ours.base_url, model_id),
            LLAMA: RestClient(LLAMA, llama.base_url, llama.model),
        }
        tokens = SYNTHETIC_TOKENS if synthetic else MAX_TOKENS
        try:
            return await paired.compare(clients, LLAMA, levels, ROUNDS, tokens, synthetic)
        finally:
            for client in clients.values():
                await client.close()


async def main() -> None:
    if "llama.cpp" not in os.environ.get("PEERS", "llama.cpp").split(","):
        print("PEERS leaves llama.cpp out: nothing to compare", flush=True)
        return
    models, _, gguf = servers.prepare_models()
    data: dict = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": machine(),
        "rounds": ROUNDS,
        # osaurus's own settings taken from the environment (e.g. OSU_SPECULATIVE=false)
        "settings": {k: v for k, v in sorted(os.environ.items()) if k.startswith(ENV_PREFIX)},
        "models": {},
    }
    print(f"test model ({MODEL_ID}): osaurus beside llama-server on its Q4_1 GGUF", flush=True)
    data["models"]["test model"] = await _side_by_side(
        servers.osaurus(models, MODEL_ID, "osaurus-vs-llama"),
        MODEL_ID,
        servers.llama_server(gguf, "smollm2"),
        [1, 8, 16],  # 16: the target compares with llama.cpp's best aggregate at any level
        synthetic=False,
    )
    data["c8_over_llama_best"] = c8_over_llama_best(data["models"]["test model"])
    from bench import synthetic_models

    for key in SYNTHETIC:
        model_dir, gguf_path = synthetic_models.build(key)
        model_id = model_dir.name.lower()
        print(f"{model_id}: osaurus beside llama-server on the same shape", flush=True)
        data["models"][key] = await _side_by_side(
            servers.osaurus(model_dir.parent, model_id, f"osaurus-vs-llama-{key}"),
            model_id,
            servers.llama_server(gguf_path, model_id),
            [1, 8] if key == "1b" else [1],
            synthetic=True,
        )
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "vs_llama.json").write_text(json.dumps(data, indent=2) + "\n")
    (RESULTS / "vs_llama.md").write_text(markdown(data))
    print(markdown(data))
    print(f"wrote {RESULTS / 'vs_llama.md'}", flush=True)


def c8_over_llama_best(levels: dict) -> dict:
    """The issue's c=8 target: osaurus's aggregate at 8 streams over llama.cpp's best aggregate
    at any level measured (p50 of the rounds)."""
    best = max(levels, key=lambda level: levels[level][LLAMA]["aggregate_tps_p50"])
    ours = levels["8"][OSAURUS]["aggregate_tps_p50"]
    theirs = levels[best][LLAMA]["aggregate_tps_p50"]
    return {
        "llama_best_level": int(best),
        "osaurus_c8_tps": ours,
        "llama_best_tps": theirs,
        "ratio": ours / theirs,
    }


def _settings(data: dict) -> str:
    settings = data.get("settings")
    if not settings:
        return ""
    return (
        " osaurus's settings from the environment: "
        + ", ".join(f"`{k}={v}`" for k, v in settings.items())
        + "."
    )


def markdown(data: dict) -> str:
    lines = [
        f"osaurus beside llama-server, {data['date']} on {data['machine']}: both servers up at "
        f"once, {data['rounds']} rounds per level, each a batch of c concurrent streamed "
        "requests on both in rotating order; ratios are osaurus over llama.cpp, paired by "
        "round (p50)." + _settings(data),
        "",
        "| model | c | osaurus tok/s per stream | llama.cpp tok/s per stream | per-stream ratio "
        "| aggregate ratio | rounds osaurus faster | TTFT osaurus / llama.cpp (ms) | TTFT ratio |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for model, levels in data["models"].items():
        for level, arms in levels.items():
            ours, llama = arms[OSAURUS], arms[LLAMA]
            lines.append(
                f"| {model} | {level} | {ours['stream_tps_p50']:.1f} | "
                f"{llama['stream_tps_p50']:.1f} | {ours['paired_stream_tps_ratio_p50']:.2f} | "
                f"{ours['paired_tps_ratio_p50']:.2f} | {ours['rounds_faster']}/{data['rounds']} | "
                f"{ours['ttft_ms_p50']:.0f} / {llama['ttft_ms_p50']:.0f} | "
                f"{ours['paired_ttft_ratio_p50']:.2f} |"
            )
    target = data.get("c8_over_llama_best")
    if target:
        lines += [
            "",
            f"Test model, osaurus's aggregate at 8 streams over llama.cpp's best (at "
            f"{target['llama_best_level']} streams), p50 of the rounds: "
            f"{target['osaurus_c8_tps']:.1f} / {target['llama_best_tps']:.1f} = "
            f"{target['ratio']:.2f} (goal >= 2).",
        ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    asyncio.run(main())
