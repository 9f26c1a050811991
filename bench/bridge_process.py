"""Where the REST bridge should run: in the server's process (what `osaurus serve` does today)
or in a process of its own (`osaurus serve --no-http` + `osaurus bridge`), with gRPC straight
to the server beside them as the floor.

All servers are up at once and take turns (bench/paired.py): the figure to read is the paired
ratio against the in-process bridge's batch of the same round, with how many rounds it won.

    python -m bench.bridge_process          # ROUNDS=16 LEVELS=1,8,16; writes bench/results/
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from contextlib import ExitStack
from pathlib import Path

from bench import paired, servers
from bench.clients import GrpcClient, RestClient
from bench.run import machine
from osaurus.child_server import free_port, osaurus_command
from osaurus.models.default_model import MODEL_ID

RESULTS = Path(os.environ.get("OUT", Path(__file__).parent / "results"))
ROUNDS = int(os.environ.get("ROUNDS", "16"))
LEVELS = [int(x) for x in os.environ.get("LEVELS", "1,8,16").split(",")]
MAX_TOKENS = 128
IN_PROCESS = "REST, bridge in the server's process"
OWN_PROCESS = "REST, bridge in its own process"
GRPC = "gRPC, no bridge"


def _own_process_bridge(target: str) -> servers.Server:
    """`osaurus bridge` in front of `target` (servers.running waits until /v1/models answers,
    which the bridge does only once it reaches the server)."""
    port = free_port()
    command = osaurus_command("bridge", "--target", target, "--port", str(port))
    process, started = servers._spawn(
        "osaurus-bridge", [*command, "--log-level", "warning"], dict(os.environ)
    )
    return servers.Server(
        "osaurus bridge", f"http://127.0.0.1:{port}/v1", MODEL_ID, process, started
    )


def _markdown(data: dict) -> str:
    lines = [
        f"Bridge placement, {data['date']} on {data['machine']}; model {MODEL_ID}, "
        f"{data['rounds']} rounds per level, each a batch of c concurrent streamed requests "
        f"(max_tokens {MAX_TOKENS}, temperature 0) on every arm in rotating order; the "
        "ratio and TTFT change are paired against the in-process bridge's batch of the same "
        "round.",
        "",
        "| c | arm | aggregate tok/s (p50) | TTFT p50 | tok/s vs in-process (paired p50) "
        "| rounds faster | TTFT change (paired p50) |",
        "|---|---|---|---|---|---|---|",
    ]
    for level, arms in data["levels"].items():
        for name, row in arms.items():
            lines.append(
                f"| {level} | {name} | {row['aggregate_tps_p50']:.1f} | "
                f"{row['ttft_ms_p50']:.0f} ms | {row['paired_tps_ratio_p50']:.3f} | "
                f"{row['rounds_faster']}/{data['rounds']} | "
                f"{row['paired_ttft_added_ms_p50']:+.1f} ms |"
            )
    return "\n".join(lines) + "\n"


async def main() -> None:
    models, _, _ = servers.prepare_models()
    with ExitStack() as stack:
        inside = stack.enter_context(
            servers.running(servers.osaurus(models, MODEL_ID, "osaurus-bridge-inside"))
        )
        apart = stack.enter_context(
            servers.running(servers.osaurus(models, MODEL_ID, "osaurus-bridge-apart", "--no-http"))
        )
        own = stack.enter_context(servers.running(_own_process_bridge(apart.grpc_target)))
        clients = {
            IN_PROCESS: RestClient(IN_PROCESS, inside.base_url, MODEL_ID),
            OWN_PROCESS: RestClient(OWN_PROCESS, own.base_url, MODEL_ID),
            GRPC: GrpcClient(GRPC, apart.grpc_target, MODEL_ID),
        }
        print("REST bridge in the server's process vs its own process vs gRPC", flush=True)
        try:
            levels = await paired.compare(clients, IN_PROCESS, LEVELS, ROUNDS, MAX_TOKENS)
        finally:
            for client in clients.values():
                await client.close()  # type: ignore[attr-defined]
    data = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": machine(),
        "rounds": ROUNDS,
        "levels": levels,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "bridge_process.json").write_text(json.dumps(data, indent=2) + "\n")
    (RESULTS / "bridge_process.md").write_text(_markdown(data))
    print(f"wrote {RESULTS / 'bridge_process.md'}", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
