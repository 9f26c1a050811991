"""`python -m bench.embeddings` (part of `make bench`): embeddings per second with
all-MiniLM-L6-v2 for batches of 1, 32 and 256 short texts, three ways in one run:

- osaurus through its server (gRPC Embed: one request holding the batch);
- osaurus' encoder in-process (osaurus.engine.encoder: MLX on OpenBLAS);
- a reference forward pass in NumPy (float32, NumPy's own BLAS): the same BERT math written
  independently from the weights, as sentence-transformers (not installable here: no torch)
  would compute it. Its vectors also check ours (cosine, reported).

Writes bench/results/embeddings.{json,md}. Environment: REPEATS (3), OUT (bench/results).
"""

from __future__ import annotations

from osaurus.engine.blas import preload_blas

preload_blas()  # before mlx loads, as the server does

import json  # noqa: E402
import os  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from bench.servers import ROOT, WORK  # noqa: E402
from osaurus.child_server import start  # noqa: E402
from osaurus.client import open_channel  # noqa: E402
from osaurus.config import default_cache_dir  # noqa: E402
from osaurus.models.default_model import (  # noqa: E402
    EMBEDDING_MODEL_ID,
    ensure_default_embedding_model,
)
from osaurus.v1 import inference_pb2 as pb  # noqa: E402
from osaurus.v1 import inference_pb2_grpc  # noqa: E402

BATCHES = (1, 32, 256)
SUBJECTS = ["The weather", "My neighbour", "A small dog", "The old library", "Our team"]
VERBS = ["looks lovely", "moved away", "plays outside", "opens at nine", "won the game"]
TIMES = ["today.", "last week.", "every morning.", "on Sundays.", "again."]


def texts(n: int) -> list[str]:
    """Short, varied sentences (8 to 10 tokens each)."""
    combos = [f"{s} {v} {t}" for s in SUBJECTS for v in VERBS for t in TIMES]
    return [combos[i % len(combos)] for i in range(n)]


class NumpyBert:
    """BertModel's forward pass with mean pooling and L2 normalization, in NumPy float32."""

    def __init__(self, path: Path):
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        self.w = load_file(str(path / "model.safetensors"))
        self.config = json.loads((path / "config.json").read_text())
        self.tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
        self.tokenizer.no_padding()

    def _norm(self, x: np.ndarray, name: str) -> np.ndarray:
        mean = x.mean(-1, keepdims=True)
        var = ((x - mean) ** 2).mean(-1, keepdims=True)
        eps = self.config["layer_norm_eps"]
        return (x - mean) / np.sqrt(var + eps) * self.w[f"{name}.weight"] + self.w[f"{name}.bias"]

    def _linear(self, x: np.ndarray, name: str) -> np.ndarray:
        return x @ self.w[f"{name}.weight"].T + self.w[f"{name}.bias"]

    def embed(self, batch: list[str]) -> np.ndarray:
        ids = [e.ids for e in self.tokenizer.encode_batch(batch)]
        n = max(map(len, ids))
        tokens = np.array([i + [0] * (n - len(i)) for i in ids])
        mask = np.array([[1.0] * len(i) + [0.0] * (n - len(i)) for i in ids], np.float32)
        e = "embeddings"
        x = (
            self.w[f"{e}.word_embeddings.weight"][tokens]
            + self.w[f"{e}.position_embeddings.weight"][:n]
        )
        x = self._norm(x + self.w[f"{e}.token_type_embeddings.weight"][0], f"{e}.LayerNorm")
        heads = self.config["num_attention_heads"]
        b, _, d = x.shape
        for i in range(self.config["num_hidden_layers"]):
            p = f"encoder.layer.{i}"

            def split(t: np.ndarray) -> np.ndarray:
                return t.reshape(b, n, heads, d // heads).transpose(0, 2, 1, 3)

            q, k, v = (
                split(self._linear(x, f"{p}.attention.self.{m}")) for m in ("query", "key", "value")
            )
            scores = (
                q @ k.transpose(0, 1, 3, 2) / np.sqrt(d // heads) + (1 - mask)[:, None, None] * -1e9
            )
            scores = np.exp(scores - scores.max(-1, keepdims=True))
            context = (scores / scores.sum(-1, keepdims=True)) @ v
            context = context.transpose(0, 2, 1, 3).reshape(b, n, d)
            x = self._norm(
                x + self._linear(context, f"{p}.attention.output.dense"),
                f"{p}.attention.output.LayerNorm",
            )
            h = _gelu(self._linear(x, f"{p}.intermediate.dense"))
            x = self._norm(x + self._linear(h, f"{p}.output.dense"), f"{p}.output.LayerNorm")
        pooled = (x * mask[..., None]).sum(1) / mask.sum(1, keepdims=True)
        return pooled / np.linalg.norm(pooled, axis=1, keepdims=True)


def _gelu(x: np.ndarray) -> np.ndarray:
    """Exact GELU, 0.5 x (1 + erf(x / sqrt 2)), with erf from Abramowitz and Stegun 7.1.26
    (error below 1.5e-7, under float32's rounding): NumPy has no erf of its own."""
    z = np.abs(x) / np.sqrt(2)
    t = 1 / (1 + 0.3275911 * z)
    poly = t * (
        0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429)))
    )
    erf = np.sign(x) * (1 - poly * np.exp(-z * z))
    return (0.5 * x * (1 + erf)).astype(np.float32)


def rate(fn: Callable[[list[str]], object], batch: list[str], repeats: int) -> float:
    """Texts per second: the median of `repeats` timed calls, after one warm-up."""
    fn(batch)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn(batch)
        times.append(time.perf_counter() - start)
    return len(batch) / statistics.median(times)


def main() -> None:
    from osaurus.engine.encoder import load_encoder
    from osaurus.models.registry import ModelRegistry

    repeats = int(os.environ.get("REPEATS", "3"))
    models = WORK / "embedding-models"
    path = ensure_default_embedding_model(models, default_cache_dir(), log=print)
    encoder = load_encoder(ModelRegistry(models).get(EMBEDDING_MODEL_ID))
    reference = NumpyBert(path)
    server = start(models, WORK / "osaurus-embeddings.log", "--no-default-model", "--no-http")
    stub = inference_pb2_grpc.InferenceServiceStub(open_channel(server.grpc_target))

    def over_grpc(batch: list[str]) -> object:
        return stub.Embed(pb.EmbedRequest(model=EMBEDDING_MODEL_ID, texts=batch))

    def in_process(batch: list[str]) -> object:
        return encoder.embed(encoder.tokenize(batch))

    rows = []
    try:
        for size in BATCHES:
            batch = texts(size)
            ours = np.array(in_process(batch).vectors)  # type: ignore[attr-defined]
            cosine = float(np.min(np.sum(ours * reference.embed(batch), axis=1)))
            rows.append(
                {
                    "batch": size,
                    "osaurus_server": rate(over_grpc, batch, repeats),
                    "osaurus_in_process": rate(in_process, batch, repeats),
                    "numpy_reference": rate(reference.embed, batch, repeats),
                    "min_cosine_vs_reference": cosine,
                }
            )
            print(rows[-1], flush=True)
    finally:
        server.stop()
    out = Path(os.environ.get("OUT", ROOT / "bench" / "results"))
    out.mkdir(parents=True, exist_ok=True)
    (out / "embeddings.json").write_text(json.dumps(rows, indent=2) + "\n")
    lines = [
        "| batch | osaurus server (gRPC), texts/s | osaurus in-process | NumPy reference "
        "| server / reference | min cosine vs reference |",
        "| ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        ratio = r["osaurus_server"] / r["numpy_reference"]
        lines.append(
            f"| {r['batch']} | {r['osaurus_server']:.0f} | {r['osaurus_in_process']:.0f} "
            f"| {r['numpy_reference']:.0f} | {ratio:.1f}x | {r['min_cosine_vs_reference']:.6f} |"
        )
    (out / "embeddings.md").write_text(
        "all-MiniLM-L6-v2, short texts (8-10 tokens), median of "
        f"{repeats} runs after a warm-up, one run on this machine.\n\n" + "\n".join(lines) + "\n"
    )
    print("\n".join(lines))


if __name__ == "__main__":
    main()
