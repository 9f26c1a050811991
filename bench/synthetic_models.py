"""Random-weight models of real shapes, for speed figures on models people actually run.

Weights cannot be downloaded here, and speed does not depend on their values, so the bench
builds Llama-3.2-1B- and 3B-shaped models (4-bit, group 32, tied embeddings) twice: in MLX's
format for osaurus, and as a Q4_1 GGUF for llama.cpp (the same bytes per weight: a float16
scale and minimum per 32 weights). Both use the test model's tokenizer, so the vocabulary is
its 49,152 tokens rather than Llama 3's 128,256 (the embedding is ~1/3 of the real one; the
layers are exact). Their text is noise: the bench asks for a fixed number of tokens
(ignore_eos). Built once into bench/.work/synthetic/, each in a staging directory renamed into
place when complete.

    python -m bench.synthetic_models 1b 3b
"""

from __future__ import annotations

import json
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import gguf
import mlx.core as mx
import numpy as np

from bench.servers import WORK
from osaurus.config import default_cache_dir
from osaurus.models.default_model import MODEL_ID, ensure_default_model, fetch_gguf

GROUP, BITS = 32, 4
VOCAB = 49152  # the test model's tokenizer


@dataclass(frozen=True)
class Shape:
    name: str
    hidden: int
    intermediate: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int

    def tensors(self) -> list[tuple[str, str, tuple[int, int]]]:
        """(mlx-lm name, GGUF name, (rows, cols)) of every matrix."""
        h, i, q, kv = self.hidden, self.intermediate, self.heads, self.kv_heads
        d = self.head_dim
        out = [("model.embed_tokens", "token_embd", (VOCAB, h))]
        for n in range(self.layers):
            a, m = f"model.layers.{n}.self_attn", f"model.layers.{n}.mlp"
            out += [
                (f"{a}.q_proj", f"blk.{n}.attn_q", (q * d, h)),
                (f"{a}.k_proj", f"blk.{n}.attn_k", (kv * d, h)),
                (f"{a}.v_proj", f"blk.{n}.attn_v", (kv * d, h)),
                (f"{a}.o_proj", f"blk.{n}.attn_output", (h, q * d)),
                (f"{m}.gate_proj", f"blk.{n}.ffn_gate", (i, h)),
                (f"{m}.up_proj", f"blk.{n}.ffn_up", (i, h)),
                (f"{m}.down_proj", f"blk.{n}.ffn_down", (h, i)),
            ]
        return out

    def norms(self) -> list[tuple[str, str]]:
        out = [("model.norm", "output_norm")]
        for n in range(self.layers):
            out += [
                (f"model.layers.{n}.input_layernorm", f"blk.{n}.attn_norm"),
                (f"model.layers.{n}.post_attention_layernorm", f"blk.{n}.ffn_norm"),
            ]
        return out

    def parameters(self) -> int:
        return sum(r * c for _, _, (r, c) in self.tensors())


SHAPES = {
    "1b": Shape("llama-3.2-1b-shape-4bit", 2048, 8192, 16, 32, 8, 64),
    "3b": Shape("llama-3.2-3b-shape-4bit", 3072, 8192, 28, 24, 8, 128),
}
ROPE_THETA, RMS_EPS, CONTEXT = 500000.0, 1e-5, 8192


def _random(shape: tuple[int, int], seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape, dtype=np.float32) * 0.02


def build_mlx(shape: Shape, target: Path) -> Path:
    """An MLX 4-bit model directory with the test model's tokenizer."""
    if (target / "config.json").is_file():
        return target
    staging = target.with_name(target.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    test_model = ensure_default_model(WORK / "models", default_cache_dir(), log=print)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy2(test_model / name, staging / name)
    weights: dict[str, mx.array] = {}
    for seed, (name, _, size) in enumerate(shape.tensors()):
        q, scales, biases = mx.quantize(mx.array(_random(size, seed)), GROUP, BITS)
        weights[f"{name}.weight"] = q
        weights[f"{name}.scales"] = scales.astype(mx.float16)
        weights[f"{name}.biases"] = biases.astype(mx.float16)
        mx.eval(q, weights[f"{name}.scales"], weights[f"{name}.biases"])
    for name, _ in shape.norms():
        weights[f"{name}.weight"] = mx.ones((shape.hidden,), dtype=mx.float16)
    mx.save_safetensors(str(staging / "model.safetensors"), weights, metadata={"format": "mlx"})
    quantization = {"group_size": GROUP, "bits": BITS}
    config = {
        "model_type": "llama",
        "architectures": ["LlamaForCausalLM"],
        "hidden_size": shape.hidden,
        "intermediate_size": shape.intermediate,
        "num_hidden_layers": shape.layers,
        "num_attention_heads": shape.heads,
        "num_key_value_heads": shape.kv_heads,
        "head_dim": shape.head_dim,
        "rms_norm_eps": RMS_EPS,
        "rope_theta": ROPE_THETA,
        "max_position_embeddings": CONTEXT,
        "vocab_size": VOCAB,
        "tie_word_embeddings": True,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "torch_dtype": "float16",
        "quantization": quantization,
        "quantization_config": quantization,
    }
    (staging / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    staging.rename(target)
    return target


def build_gguf(shape: Shape, target: Path) -> Path:
    """The same shapes as a Q4_1 GGUF, with the test model's tokenizer metadata."""
    if target.is_file():
        return target
    source = gguf.GGUFReader(fetch_gguf(default_cache_dir(), log=print))
    partial = target.with_name(target.name + ".partial")
    writer = gguf.GGUFWriter(partial, "llama")
    writer.add_name(shape.name)
    writer.add_context_length(CONTEXT)
    writer.add_embedding_length(shape.hidden)
    writer.add_block_count(shape.layers)
    writer.add_feed_forward_length(shape.intermediate)
    writer.add_head_count(shape.heads)
    writer.add_head_count_kv(shape.kv_heads)
    writer.add_rope_dimension_count(shape.head_dim)
    writer.add_key_length(shape.head_dim)
    writer.add_value_length(shape.head_dim)
    writer.add_rope_freq_base(ROPE_THETA)
    writer.add_layer_norm_rms_eps(RMS_EPS)
    writer.add_vocab_size(VOCAB)
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_Q4_1)
    for key, field in source.fields.items():  # the tokenizer, as the test model has it
        if key.startswith("tokenizer."):
            value = field.contents()
            if field.types[0] == gguf.GGUFValueType.ARRAY:
                writer.add_key_value(key, value, field.types[0], sub_type=field.types[-1])
            else:
                writer.add_key_value(key, value, field.types[0])
    q41 = gguf.GGMLQuantizationType.Q4_1
    for seed, (_, name, size) in enumerate(shape.tensors()):
        data = gguf.quants.quantize(_random(size, seed), q41)
        writer.add_tensor(f"{name}.weight", data, raw_dtype=q41)
    for _, name in shape.norms():
        writer.add_tensor(f"{name}.weight", np.ones(shape.hidden, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    partial.rename(target)
    return target


def build(key: str) -> tuple[Path, Path]:
    """(MLX model directory, GGUF file) for SHAPES[key], built on first use."""
    shape = SHAPES[key]
    home = WORK / "synthetic"
    print(f"bench: {shape.name} ({shape.parameters() / 1e9:.2f}B parameters)", flush=True)
    return build_mlx(shape, home / "models" / shape.name), build_gguf(
        shape, home / f"{shape.name}.gguf"
    )


if __name__ == "__main__":
    for key in sys.argv[1:] or list(SHAPES):
        print(build(key))
    print(f"(test model id: {MODEL_ID})")
