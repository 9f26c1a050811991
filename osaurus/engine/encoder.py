"""Embedding models: a BERT encoder in MLX, with sentence-transformers' pooling and normalization.

mlx-lm runs decoders only. mlx-embeddings has BERT, but needs mlx-vlm, mlx-audio, opencv,
datasets and pyarrow (17 more packages, measured with pip --dry-run) and imports them on
import; the encoder itself is a hundred lines, so it is here. It follows Hugging Face's
BertModel (post-norm layers, exact GELU) and sentence-transformers' modules.json: mean (or CLS)
pooling over the attention mask, then L2 normalization when the model has a Normalize module.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mlx.core as mx
import mlx.nn as nn

from osaurus.engine.precision import Precision
from osaurus.errors import ContextLengthExceeded, InvalidArgument, UnsupportedModel
from osaurus.models.registry import ModelInfo

# Inputs embedded together in one forward pass: attention's scores grow with batch x length².
BATCH = 32


class _Layer(nn.Module):
    def __init__(self, hidden: int, heads: int, intermediate: int, eps: float):
        super().__init__()
        self.heads = heads
        self.query = nn.Linear(hidden, hidden)
        self.key = nn.Linear(hidden, hidden)
        self.value = nn.Linear(hidden, hidden)
        self.attention_out = nn.Linear(hidden, hidden)
        self.attention_norm = nn.LayerNorm(hidden, eps=eps)
        self.intermediate = nn.Linear(hidden, intermediate)
        self.output = nn.Linear(intermediate, hidden)
        self.output_norm = nn.LayerNorm(hidden, eps=eps)

    def __call__(self, x: mx.array, mask: mx.array) -> mx.array:
        b, n, d = x.shape

        def split(t: mx.array) -> mx.array:
            return t.reshape(b, n, self.heads, d // self.heads).transpose(0, 2, 1, 3)

        q, k, v = split(self.query(x)), split(self.key(x)), split(self.value(x))
        scores = (q @ k.transpose(0, 1, 3, 2)) * (1 / math.sqrt(d // self.heads)) + mask
        context = (mx.softmax(scores, axis=-1) @ v).transpose(0, 2, 1, 3).reshape(b, n, d)
        x = self.attention_norm(x + self.attention_out(context))
        return self.output_norm(x + self.output(nn.gelu(self.intermediate(x))))


class _Embeddings(nn.Module):
    def __init__(self, vocab: int, positions: int, types: int, hidden: int, eps: float):
        super().__init__()
        self.word_embeddings = nn.Embedding(vocab, hidden)
        self.position_embeddings = nn.Embedding(positions, hidden)
        self.token_type_embeddings = nn.Embedding(types, hidden)
        self.norm = nn.LayerNorm(hidden, eps=eps)

    def __call__(self, ids: mx.array) -> mx.array:
        positions = mx.arange(ids.shape[1])[None]
        x = self.word_embeddings(ids) + self.position_embeddings(positions)
        return self.norm(x + self.token_type_embeddings(mx.zeros_like(ids)))


class BertEncoder(nn.Module):
    def __init__(self, config: dict[str, Any]):
        super().__init__()
        hidden, eps = config["hidden_size"], config.get("layer_norm_eps", 1e-12)
        self.embeddings = _Embeddings(
            config["vocab_size"],
            config["max_position_embeddings"],
            config.get("type_vocab_size", 2),
            hidden,
            eps,
        )
        self.layers = [
            _Layer(hidden, config["num_attention_heads"], config["intermediate_size"], eps)
            for _ in range(config["num_hidden_layers"])
        ]

    def __call__(self, ids: mx.array, attention_mask: mx.array) -> mx.array:
        """Last hidden states; padded positions (mask 0) are never attended to."""
        additive = ((1.0 - attention_mask.astype(mx.float32)) * -1e9)[:, None, None, :]
        x = self.embeddings(ids)
        for layer in self.layers:
            x = layer(x, additive)
        return x


# Hugging Face's BertModel names -> ours (the pooler head is not used by sentence embeddings).
_RENAMES = (
    ("embeddings.LayerNorm.", "embeddings.norm."),
    ("encoder.layer.", "layers."),
    (".attention.self.", "."),
    (".attention.output.dense.", ".attention_out."),
    (".attention.output.LayerNorm.", ".attention_norm."),
    (".intermediate.dense.", ".intermediate."),
    (".output.dense.", ".output."),
    (".output.LayerNorm.", ".output_norm."),
)


def _our_name(name: str) -> str | None:
    name = name.removeprefix("bert.")
    if name.startswith("pooler.") or name.endswith("position_ids"):
        return None
    for theirs, ours in _RENAMES:
        name = name.replace(theirs, ours)
    return name


@dataclass
class Embedded:
    vectors: list[list[float]]
    tokens: int  # input tokens, after truncation


@dataclass
class LoadedEncoder:
    """An embedding model in memory: what the engine keeps of it, and how it embeds."""

    info: ModelInfo
    model: BertEncoder
    tokenizer: Any  # tokenizers.Tokenizer
    max_tokens: int  # longer inputs are cut (truncate) or refused
    pooling: str  # "mean" or "cls"
    normalize: bool  # the model ends in a Normalize module
    load_seconds: float
    memory_bytes: int
    precision: Precision = field(default_factory=lambda: Precision("float32"))
    loaded_at: float = field(default_factory=time.perf_counter)

    @property
    def context_length(self) -> int:
        return self.max_tokens

    def tokenize(self, texts: list[str]) -> list[list[int]]:
        return [e.ids for e in self.tokenizer.encode_batch(texts)]

    def embed(
        self,
        inputs: list[list[int]],
        truncate: bool = True,
        dimensions: int = 0,
        normalize: bool | None = None,
        field_name: str = "input",
    ) -> Embedded:
        """Vectors for token-id inputs, in order; batched by similar length to pad little."""
        hidden = self.hidden_size
        if dimensions and not 0 < dimensions <= hidden:
            raise InvalidArgument(
                f"dimensions must be between 1 and {hidden} for {self.info.id}",
                field="dimensions",
            )
        for i, ids in enumerate(inputs):
            if not ids:
                raise InvalidArgument(f"{field_name}[{i}] is empty", field=field_name)
            if len(ids) > self.max_tokens and not truncate:
                raise ContextLengthExceeded(
                    f"{field_name}[{i}] is {len(ids)} tokens, but {self.info.id} embeds at most "
                    f"{self.max_tokens} (set truncate to cut it)",
                    field=field_name,
                )
        cut = [ids[: self.max_tokens] for ids in inputs]
        order = sorted(range(len(cut)), key=lambda i: len(cut[i]))
        pooled = mx.concatenate(
            [
                self._forward([cut[i] for i in order[s : s + BATCH]])
                for s in range(0, len(order), BATCH)
            ]
        )[mx.array(sorted(range(len(order)), key=order.__getitem__))]  # back in input order
        if dimensions:  # Matryoshka-style: keep the first dimensions (normalized again below)
            pooled = pooled[:, :dimensions]
        if self.normalize if normalize is None else normalize:
            pooled = pooled / mx.maximum(mx.linalg.norm(pooled, axis=-1, keepdims=True), 1e-12)
        vectors: list[list[float]] = pooled.astype(mx.float32).tolist()  # type: ignore[assignment]
        return Embedded(vectors, sum(len(ids) for ids in cut))

    @property
    def hidden_size(self) -> int:
        return self.model.embeddings.word_embeddings.weight.shape[1]

    def _forward(self, batch: list[list[int]]) -> mx.array:
        """Pooled (not yet normalized) vectors of one padded batch."""
        length = max(len(ids) for ids in batch)
        pad = [ids + [0] * (length - len(ids)) for ids in batch]
        mask = mx.array([[1] * len(ids) + [0] * (length - len(ids)) for ids in batch])
        states = self.model(mx.array(pad), mask)
        if self.pooling == "cls":
            pooled = states[:, 0]
        else:
            weights = mask[..., None].astype(states.dtype)
            pooled = (states * weights).sum(axis=1) / mx.maximum(weights.sum(axis=1), 1e-9)
        mx.eval(pooled)  # one batch at a time: its attention scores are freed before the next
        return pooled


def _sentence_transformers(path: Path) -> tuple[str, bool, int | None]:
    """Pooling mode, whether it normalizes, and its max_seq_length, from its module files."""
    try:
        modules = json.loads((path / "modules.json").read_text())
    except (OSError, ValueError):
        modules = []
    types = [m.get("type", "") for m in modules if isinstance(m, dict)]
    normalize = any(t.endswith("Normalize") for t in types)
    pooling = "mean"
    for m in modules if isinstance(modules, list) else []:
        if str(m.get("type", "")).endswith("Pooling"):
            try:
                config = json.loads((path / m.get("path", "") / "config.json").read_text())
            except (OSError, ValueError):
                config = {}
            if config.get("pooling_mode_cls_token"):
                pooling = "cls"
    try:
        max_len = json.loads((path / "sentence_bert_config.json").read_text()).get("max_seq_length")
    except (OSError, ValueError):
        max_len = None
    return pooling, normalize, max_len


def load_encoder(info: ModelInfo) -> LoadedEncoder:
    """Load a BERT-family embedding model (engine thread)."""
    from tokenizers import Tokenizer

    start = time.perf_counter()
    config = json.loads((info.path / "config.json").read_text())
    if config.get("model_type") != "bert":
        raise UnsupportedModel(
            f"cannot embed with {info.id!r}: model type {config.get('model_type')!r} "
            "(osaurus embeds with BERT-family encoders)",
            field="model",
        )
    model = BertEncoder(config)
    weights: dict[str, mx.array] = {}
    for file in sorted(info.path.glob("*.safetensors")):
        for name, array in mx.load(str(file)).items():  # type: ignore[union-attr]
            ours = _our_name(name)
            if ours is not None:
                weights[ours] = array.astype(mx.float32)
    model.load_weights(list(weights.items()))
    mx.eval(model.parameters())
    pooling, normalize, max_len = _sentence_transformers(info.path)
    tokenizer = Tokenizer.from_file(str(info.path / "tokenizer.json"))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    return LoadedEncoder(
        info=info,
        model=model,
        tokenizer=tokenizer,
        max_tokens=min(
            max_len or config["max_position_embeddings"], config["max_position_embeddings"]
        ),
        pooling=pooling,
        normalize=normalize,
        load_seconds=time.perf_counter() - start,
        memory_bytes=sum(a.nbytes for a in weights.values()),
    )
