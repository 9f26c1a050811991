"""Import a llama-architecture GGUF file as an MLX model directory that mlx-lm loads.

MLX reads GGUF itself (`mx.load` turns Q4_0/Q4_1/Q8_0 blocks into MLX-quantized arrays with group
size 32); what is ours is the rest of the conversion, which no maintained library does without
PyTorch: rename tensors to mlx-lm's llama names, undo llama.cpp's row permutation of the q/k
projections, and rebuild config.json and a Hugging Face tokenizer (gguf_tokenizer.py) from the
GGUF metadata.

The `gguf` package (llama.cpp's own reader) validates the file first, so an unsupported
architecture or tensor type fails with its name before anything is written; it also dequantizes
the K-quants MLX cannot read exactly, which MLX then quantizes again. The result is written
to a hidden temporary directory and renamed into place: a failed import leaves nothing behind.
"""

from __future__ import annotations

import json
import re
import shutil
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from osaurus.errors import AlreadyExists, InvalidArgument, NotFound, UnsupportedModel
from osaurus.models.gguf_tokenizer import SUPPORTED_TOKENIZERS, write_tokenizer
from osaurus.models.staging import staging_dir

SUPPORTED_ARCHITECTURES = {"llama"}
# GGUF quantized blocks hold 32 weights; MLX keeps that as the quantization group size.
GGUF_GROUP_SIZE = 32
FLOAT_TYPES = {"F32", "F16"}
# Types `mx.load` turns into MLX arrays exactly: Q4_0/Q4_1/Q8_0 blocks become MLX-quantized arrays
# (4 or 8 bits, group 32) with no loss. (It also decodes some K-quants, but measured against
# llama.cpp's reference it gets Q4_K wrong and cannot read Q3_K or Q5_K, so we never use it there.)
MLX_EXACT_TYPES = FLOAT_TYPES | {"Q4_0", "Q4_1", "Q8_0"}
# Any other quantized tensor is dequantized with gguf-py (llama.cpp's reference code) and quantized
# again with MLX, affine 8-bit in groups of 32. Fewer bits are not faithful: MLX's affine grid keeps
# zero exactly representable, so it does not land on a K-quant's own grid, and 4- or 5-bit copies
# of Q4_K/Q5_K moved a test model's logits by ~20% of their range (8 bits: <1%). The price is size:
# a Q4_K_M file grows ~1.7x. (Exact 4-bit repacking of Q4_K's own scales is possible; not done yet.)
REQUANTIZED_BITS = {
    "Q4_0": 4,
    "Q4_1": 4,
    "Q8_0": 8,  # only in files that mix them with K-quants
    "Q2_K": 8,
    "Q3_K": 8,
    "Q4_K": 8,
    "Q5_K": 8,
    "Q6_K": 8,
}
SUPPORTED_TENSOR_TYPES = FLOAT_TYPES | set(REQUANTIZED_BITS)

_LAYER_NAMES = {
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
    "attn_norm": "input_layernorm",
    "ffn_norm": "post_attention_layernorm",
}
_GLOBAL_NAMES = {
    "token_embd": "model.embed_tokens",
    "output_norm": "model.norm",
    "output": "lm_head",
}
# Tensors llama.cpp adds that mlx-lm's llama computes itself (rope_freqs becomes rope_scaling).
_SKIPPED = {"rope_freqs"}


def default_model_id(gguf_path: Path) -> str:
    """`SmolLM2-135M-Instruct.Q4_1.gguf` -> `smollm2-135m-instruct.q4_1`."""
    return gguf_path.stem.lower()


def validate_model_id(model_id: str) -> str:
    if not re.fullmatch(r"[a-z0-9][a-z0-9._-]*(/[a-z0-9][a-z0-9._-]*)?", model_id):
        raise InvalidArgument(
            f"invalid model name {model_id!r}: use lower-case letters, digits, '.', '_', '-' "
            "(optionally one 'org/' prefix)",
            field="name",
        )
    return model_id


def import_gguf(gguf_path: Path, models_dir: Path, model_id: str | None = None) -> Path:
    """Convert `gguf_path` into `models_dir/<model_id>`; returns the new model directory."""
    gguf_path = Path(gguf_path).expanduser()
    if model_id:
        validate_model_id(model_id)
    if not gguf_path.is_file():
        raise NotFound(f"GGUF file not found: {gguf_path}", field="gguf_path")
    model_id = validate_model_id(model_id or default_model_id(gguf_path))
    target = models_dir / model_id
    if target.exists():
        raise AlreadyExists(f"model {model_id!r} already exists at {target}", field="name")

    reader = _open_checked(gguf_path)
    meta = {name: field.contents() for name, field in reader.fields.items()}
    tensor_types = {t.name: t.tensor_type.name for t in reader.tensors}
    config = _build_config(meta, reader)

    import mlx.core as mx  # imported here: only the engine process needs MLX loaded

    mlx_weights = _convert_weights(_read_tensors(gguf_path, reader), config, tensor_types)
    config["quantization"] = _quantization_config(mlx_weights)
    if not config["quantization"]:
        del config["quantization"]
    else:
        config["quantization_config"] = config["quantization"]

    target.parent.mkdir(parents=True, exist_ok=True)
    staging = staging_dir(models_dir, "import")
    try:
        mx.save_safetensors(str(staging / "model.safetensors"), mlx_weights, {"format": "mlx"})
        (staging / "config.json").write_text(json.dumps(config, indent=2))
        write_tokenizer(meta, staging)
        staging.chmod(0o755)  # mkdtemp makes it private; a model directory is not secret
        staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def _open_checked(gguf_path: Path):
    """Open the file with gguf-py and refuse, by name, what we cannot convert."""
    from gguf import GGUFReader

    try:
        reader = GGUFReader(str(gguf_path))
    except Exception as exc:
        raise InvalidArgument(
            f"{gguf_path} is not a readable GGUF file: {exc}", field="gguf_path"
        ) from exc
    field = reader.get_field("general.architecture")
    arch = field.contents() if field is not None else None
    if arch not in SUPPORTED_ARCHITECTURES:
        raise UnsupportedModel(
            f"unsupported GGUF architecture {arch!r}; supported: {sorted(SUPPORTED_ARCHITECTURES)}",
            field="gguf_path",
        )
    bad = sorted({t.tensor_type.name for t in reader.tensors} - SUPPORTED_TENSOR_TYPES)
    if bad:
        example = next(t.name for t in reader.tensors if t.tensor_type.name in bad)
        raise UnsupportedModel(
            f"unsupported GGUF tensor type(s) {', '.join(bad)} (e.g. tensor {example!r}); "
            f"supported: {', '.join(sorted(SUPPORTED_TENSOR_TYPES))}",
            field="gguf_path",
        )
    model_field = reader.get_field("tokenizer.ggml.model")
    tok_model = model_field.contents() if model_field is not None else None
    if tok_model not in SUPPORTED_TOKENIZERS:
        raise UnsupportedModel(
            f"unsupported GGUF tokenizer model {tok_model!r}; supported: "
            + ", ".join(f"{k!r} ({v})" for k, v in SUPPORTED_TOKENIZERS.items()),
            field="gguf_path",
        )
    return reader


def _read_tensors(gguf_path: Path, reader) -> Iterator[tuple[str, Any]]:
    """The file's tensors as MLX arrays, one at a time (a 7B model never sits in memory as floats).

    Quantized tensors come either MLX-quantized (`name.weight/.scales/.biases`, exact types) or as
    float32 dequantized by gguf-py, for `_convert_weights` to quantize again.
    """
    import mlx.core as mx
    import numpy as np
    from gguf.quants import dequantize

    if all(t.tensor_type.name in MLX_EXACT_TYPES for t in reader.tensors):
        try:
            yield from mx.load(str(gguf_path)).items()  # type: ignore[union-attr]  # a dict for GGUF
        except Exception as exc:  # MLX raises plain RuntimeError/ValueError on a broken file
            raise InvalidArgument(
                f"cannot read GGUF file {gguf_path}: {exc}", field="gguf_path"
            ) from exc
        return
    for tensor in reader.tensors:
        if tensor.tensor_type.name in FLOAT_TYPES:
            yield tensor.name, mx.array(np.asarray(tensor.data))
        else:
            yield tensor.name, mx.array(dequantize(tensor.data, tensor.tensor_type))


def _build_config(meta: dict[str, Any], reader) -> dict[str, Any]:
    def get(key: str, default: Any = None) -> Any:
        return meta.get(f"llama.{key}", default)

    hidden = int(get("embedding_length"))
    heads = int(get("attention.head_count"))
    shapes = {t.name: [int(n) for n in t.shape] for t in reader.tensors}  # GGUF order: cols first
    vocab_size = shapes["token_embd.weight"][-1]
    config: dict[str, Any] = {
        "model_type": "llama",
        "architectures": ["LlamaForCausalLM"],
        "hidden_size": hidden,
        "intermediate_size": int(get("feed_forward_length")),
        "num_hidden_layers": int(get("block_count")),
        "num_attention_heads": heads,
        "num_key_value_heads": int(get("attention.head_count_kv", heads)),
        "head_dim": int(get("rope.dimension_count", hidden // heads)),
        "rms_norm_eps": float(get("attention.layer_norm_rms_epsilon", 1e-5)),
        "rope_theta": float(get("rope.freq_base", 10000.0)),
        "max_position_embeddings": int(get("context_length", 2048)),
        "vocab_size": vocab_size,
        "tie_word_embeddings": "output.weight" not in shapes,
        "bos_token_id": meta.get("tokenizer.ggml.bos_token_id"),
        "eos_token_id": meta.get("tokenizer.ggml.eos_token_id"),
        "imported_from": "gguf",
    }
    scaling_type = get("rope.scaling.type")
    if scaling_type == "linear":
        config["rope_scaling"] = {"type": "linear", "factor": float(get("rope.scaling.factor"))}
    rope_freqs = next((t for t in reader.tensors if t.name == "rope_freqs.weight"), None)
    if rope_freqs is not None:
        scaling = _llama3_rope_scaling(
            rope_freqs.data,
            config["rope_theta"],
            config["head_dim"],
            int(get("rope.scaling.original_context_length", 8192)),
        )
        if scaling:
            config["rope_scaling"] = scaling
    return config


def llama3_rope_factors(
    base: float, dim: int, factor: float, low: float, high: float, original_context: int
):
    """Per-frequency divisors of Llama 3.1 RoPE scaling, as llama.cpp's converter computes them."""
    import numpy as np

    wavelen = 2 * np.pi * base ** (np.arange(0, dim, 2) / dim)
    smooth = (original_context / wavelen - low) / (high - low)
    medium = 1 / ((1 - smooth) / factor + smooth)
    return np.where(
        wavelen < original_context / high,
        1.0,
        np.where(wavelen > original_context / low, factor, medium),
    )


def _llama3_rope_scaling(rope_freqs, base: float, dim: int, original_context: int) -> dict | None:
    """llama.cpp stores Llama 3.1+ RoPE scaling only as the `rope_freqs` vector; mlx-lm wants the
    parameters it came from. Infer them (factor = the largest divisor; Meta's low/high frequency
    factors 1 and 4) and refuse the file unless they rebuild the same vector."""
    import numpy as np

    stored = np.asarray(rope_freqs, dtype=np.float64).reshape(-1)
    factor = float(stored.max())
    if np.allclose(stored, 1.0):
        return None
    rebuilt = llama3_rope_factors(base, dim, factor, 1.0, 4.0, original_context)
    if rebuilt.shape != stored.shape or not np.allclose(rebuilt, stored, rtol=1e-3):
        raise UnsupportedModel(
            "this GGUF's rope_freqs do not match Llama 3 RoPE scaling (factor "
            f"{factor:g}, original context {original_context}); cannot convert it faithfully",
            field="gguf_path",
        )
    return {
        "rope_type": "llama3",
        "factor": factor,
        "low_freq_factor": 1.0,
        "high_freq_factor": 4.0,
        "original_max_position_embeddings": original_context,
    }


def _mlx_name(gguf_name: str) -> str | None:
    base, _, suffix = gguf_name.rpartition(".")  # suffix: weight | scales | biases
    if base in _SKIPPED:
        return None
    if base in _GLOBAL_NAMES:
        return f"{_GLOBAL_NAMES[base]}.{suffix}"
    match = re.fullmatch(r"blk\.(\d+)\.(\w+)", base)
    if match and match.group(2) in _LAYER_NAMES:
        return f"model.layers.{match.group(1)}.{_LAYER_NAMES[match.group(2)]}.{suffix}"
    raise UnsupportedModel(f"unexpected tensor {gguf_name!r} in a llama GGUF file")


def _unpermute_rows(x, n_head: int):
    """Invert llama.cpp's q/k permutation, which viewed rows as (head, 2, dim/2) and swapped the
    last two axes: view them as (head, dim/2, 2) and swap back.

    Quantization groups run along each row, so the same row order applies to weights, scales
    and biases alike.
    """
    rows = x.shape[0]
    return x.reshape(n_head, rows // n_head // 2, 2, *x.shape[1:]).swapaxes(1, 2).reshape(x.shape)


def _convert_weights(
    tensors: Iterable[tuple[str, Any]], config: dict[str, Any], tensor_types: dict[str, str]
) -> dict[str, Any]:
    import mlx.core as mx

    out: dict[str, Any] = {}
    for name, array in tensors:
        mlx_name = _mlx_name(name)
        if mlx_name is None:
            continue
        if ".attn_q." in name:
            array = _unpermute_rows(array, config["num_attention_heads"])
        elif ".attn_k." in name:
            array = _unpermute_rows(array, config["num_key_value_heads"])
        bits = REQUANTIZED_BITS.get(tensor_types.get(name, ""))
        if bits is not None and mx.issubdtype(array.dtype, mx.floating):  # dequantized by gguf-py
            weight, scales, biases = mx.quantize(array, group_size=GGUF_GROUP_SIZE, bits=bits)
            mx.eval(weight, scales, biases)  # now, so the float copy is freed tensor by tensor
            base = mlx_name.removesuffix(".weight")
            out |= {mlx_name: weight, f"{base}.scales": scales, f"{base}.biases": biases}
            continue
        out[mlx_name] = array
    return out


def _quantization_config(weights: dict) -> dict[str, Any]:
    """mlx-lm's `quantization` block: the common bit width, plus per-layer exceptions.

    (Q4_1 files keep the token embedding in Q8_0, for example.)
    """
    bits_by_layer = {}
    for name, scales in weights.items():
        if not name.endswith(".scales"):
            continue
        layer = name[: -len(".scales")]
        packed = weights[f"{layer}.weight"]
        in_features = scales.shape[-1] * GGUF_GROUP_SIZE
        bits_by_layer[layer] = packed.shape[-1] * 32 // in_features
    if not bits_by_layer:
        return {}
    common = Counter(bits_by_layer.values()).most_common(1)[0][0]
    config: dict[str, Any] = {"group_size": GGUF_GROUP_SIZE, "bits": common}
    for layer, bits in sorted(bits_by_layer.items()):
        if bits != common:
            config[layer] = {"group_size": GGUF_GROUP_SIZE, "bits": bits}
    return config
