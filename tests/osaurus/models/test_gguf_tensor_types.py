"""Each supported GGUF tensor type imports to a model whose logits match mlx-lm's own llama.

A tiny random llama is written as GGUF the way llama.cpp's converter writes it (q/k rows
permuted, tensors in the given type), imported, and compared with mlx-lm's reference llama built
from the same (dequantized) weights. A wrong tensor mapping, permutation or quantization config
shows up as different logits.
"""

from __future__ import annotations

from pathlib import Path

import gguf
import numpy as np
import pytest
from gguf.quants import dequantize, quantize

from osaurus.models.gguf_import import import_gguf

# K-quant rows hold whole 256-weight super-blocks, so every row length is a multiple of 256.
HIDDEN, HEADS, KV_HEADS, LAYERS, FFN, VOCAB = 256, 4, 2, 2, 512, 256
HEAD_DIM = HIDDEN // HEADS


def _llama_cpp_permute(w: np.ndarray, n_head: int) -> np.ndarray:
    """llama.cpp's convert script permutation of q/k rows."""
    return (
        w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:])
        .swapaxes(1, 2)
        .reshape(w.shape)
    )


def _random_weights(rng: np.random.Generator) -> dict[str, np.ndarray]:
    def mat(rows: int, cols: int) -> np.ndarray:
        return (rng.standard_normal((rows, cols)) * 0.2).astype(np.float32)

    weights = {
        "model.embed_tokens.weight": mat(VOCAB, HIDDEN),
        "lm_head.weight": mat(VOCAB, HIDDEN),
        "model.norm.weight": (1 + 0.1 * rng.standard_normal(HIDDEN)).astype(np.float32),
    }
    for i in range(LAYERS):
        p = f"model.layers.{i}."
        weights |= {
            p + "self_attn.q_proj.weight": mat(HEADS * HEAD_DIM, HIDDEN),
            p + "self_attn.k_proj.weight": mat(KV_HEADS * HEAD_DIM, HIDDEN),
            p + "self_attn.v_proj.weight": mat(KV_HEADS * HEAD_DIM, HIDDEN),
            p + "self_attn.o_proj.weight": mat(HIDDEN, HEADS * HEAD_DIM),
            p + "mlp.gate_proj.weight": mat(FFN, HIDDEN),
            p + "mlp.up_proj.weight": mat(FFN, HIDDEN),
            p + "mlp.down_proj.weight": mat(HIDDEN, FFN),
            p + "input_layernorm.weight": np.ones(HIDDEN, np.float32),
            p + "post_attention_layernorm.weight": np.ones(HIDDEN, np.float32),
        }
    return weights


_GGUF_NAMES = {
    "self_attn.q_proj": "attn_q",
    "self_attn.k_proj": "attn_k",
    "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output",
    "mlp.gate_proj": "ffn_gate",
    "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
    "input_layernorm": "attn_norm",
    "post_attention_layernorm": "ffn_norm",
}


def _gguf_name(hf_name: str) -> str:
    base = hf_name.removesuffix(".weight")
    top = {"model.embed_tokens": "token_embd", "lm_head": "output", "model.norm": "output_norm"}
    if base in top:
        return top[base] + ".weight"
    _, _, layer, rest = base.split(".", 3)
    return f"blk.{layer}.{_GGUF_NAMES[rest]}.weight"


# K-quant block layouts: bytes per 256 weights, and where the fp16 super-block scale (d) and min
# (dmin) sit, with sizes that keep weights around +-0.2. dmin is chosen so that, for random
# sub-scales and quants, the weights average zero as trained weights do (a large mean makes the
# tiny model's attention so sharp that 0.1% weight noise flips its logits).
_K_BLOCKS = {
    "Q2_K": (84, {80: 4e-3, 82: 6e-3}),  # w = d*sc*q - dmin*m, q in 0..3: dmin = 1.5 d
    "Q3_K": (110, {108: 2e-3}),  # symmetric
    "Q4_K": (144, {0: 3e-4, 2: 2.25e-3}),  # q in 0..15: dmin = 7.5 d
    "Q5_K": (176, {0: 1e-4, 2: 1.55e-3}),  # q in 0..31: dmin = 15.5 d
    "Q6_K": (210, {208: 6e-5}),  # symmetric
}


def _random_k_quant(rows: int, cols: int, type_name: str, rng: np.random.Generator) -> np.ndarray:
    """Valid K-quant bytes (gguf-py cannot quantize K types): random quants and sub-scales,
    fp16 super-block scales of a sane size."""
    block_bytes, scale_offsets = _K_BLOCKS[type_name]
    blocks = rng.integers(0, 256, (rows, cols // 256, block_bytes), dtype=np.uint8)
    for offset, size in scale_offsets.items():
        scale = (size * rng.uniform(0.9, 1.1, (rows, cols // 256))).astype(np.float16)
        blocks[:, :, offset : offset + 2] = scale.view(np.uint8).reshape(rows, cols // 256, 2)
    return blocks.reshape(rows, -1)


def _q4_k_m(name: str) -> gguf.GGMLQuantizationType:
    """Roughly llama.cpp's Q4_K_M recipe: Q6_K for v/down/output, Q8_0 embedding, Q4_K else."""
    if any(part in name for part in ("v_proj", "down_proj", "lm_head")):
        return gguf.GGMLQuantizationType.Q6_K
    if "embed_tokens" in name:
        return gguf.GGMLQuantizationType.Q8_0
    return gguf.GGMLQuantizationType.Q4_K


def _write(
    path: Path,
    weights: dict[str, np.ndarray],
    type_name: str,
    rope_freqs: np.ndarray | None = None,
    original_context: int | None = None,
) -> dict:
    """Write the GGUF; return the weights as the file holds them (dequantized, un-permuted)."""
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_context_length(512)
    writer.add_embedding_length(HIDDEN)
    writer.add_block_count(LAYERS)
    writer.add_feed_forward_length(FFN)
    writer.add_head_count(HEADS)
    writer.add_head_count_kv(KV_HEADS)
    writer.add_rope_dimension_count(HEAD_DIM)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_rope_freq_base(10000.0)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("default")
    writer.add_token_list([chr(0x100 + i) for i in range(VOCAB)])
    writer.add_token_types([1] * VOCAB)
    writer.add_token_merges([])
    writer.add_bos_token_id(0)
    writer.add_eos_token_id(1)

    if rope_freqs is not None:
        writer.add_tensor("rope_freqs.weight", rope_freqs.astype(np.float32))
    if original_context is not None:
        writer.add_rope_scaling_orig_ctx_len(original_context)
    held = {}
    for name, w in weights.items():
        qtype = _q4_k_m(name) if type_name == "Q4_K_M" else gguf.GGMLQuantizationType[type_name]
        data = w
        if ".q_proj." in name:
            data = _llama_cpp_permute(w, HEADS)
        elif ".k_proj." in name:
            data = _llama_cpp_permute(w, KV_HEADS)
        if w.ndim == 1 or qtype == gguf.GGMLQuantizationType.F32:
            writer.add_tensor(_gguf_name(name), data)
            held[name] = w
        elif qtype == gguf.GGMLQuantizationType.F16:
            writer.add_tensor(_gguf_name(name), data.astype(np.float16))
            held[name] = w.astype(np.float16).astype(np.float32)
        else:
            if qtype.name in _K_BLOCKS:
                packed = _random_k_quant(*w.shape, qtype.name, np.random.default_rng(len(held)))
            else:
                packed = quantize(data, qtype)
            writer.add_tensor(_gguf_name(name), packed, raw_shape=packed.shape, raw_dtype=qtype)
            # What the file holds, with the permutation undone, is the reference.
            restored = dequantize(packed, qtype).reshape(data.shape)
            if ".q_proj." in name or ".k_proj." in name:
                n = HEADS if ".q_proj." in name else KV_HEADS
                restored = (
                    restored.reshape(n, w.shape[0] // n // 2, 2, -1).swapaxes(1, 2).reshape(w.shape)
                )
            held[name] = restored
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return held


@pytest.mark.parametrize(
    ("type_name", "tolerance"),
    [
        ("F32", 0.02),
        ("F16", 0.02),
        ("Q4_0", 0.02),
        ("Q4_1", 0.02),
        ("Q8_0", 0.02),
        # K-quants are re-quantized to MLX 8-bit groups of 32.
        ("Q2_K", 0.03),
        ("Q3_K", 0.03),
        ("Q4_K", 0.03),
        ("Q5_K", 0.03),
        ("Q6_K", 0.03),
        ("Q4_K_M", 0.03),  # a mix of Q4_K, Q6_K and Q8_0, as real files are
    ],
)
def test_imported_logits_match_reference_llama(
    tmp_path: Path, type_name: str, tolerance: float
) -> None:
    import mlx.core as mx
    from mlx_lm import load

    weights = _random_weights(np.random.default_rng(0))
    held = _write(tmp_path / "tiny.gguf", weights, type_name)
    imported, _ = load(str(import_gguf(tmp_path / "tiny.gguf", tmp_path / "models", "tiny")))

    tokens = mx.array([[3, 17, 200, 5, 99, 42, 7, 128]])
    got = imported(tokens).astype(mx.float32)
    want = _reference_llama(held)(tokens)
    scale = mx.abs(want).max().item()
    assert mx.abs(got - want).max().item() < tolerance * scale


def _reference_llama(weights: dict[str, np.ndarray], rope_scaling: dict | None = None):
    """mlx-lm's own llama with the weights the GGUF file holds."""
    import mlx.core as mx
    from mlx_lm.models import llama

    args = llama.ModelArgs(
        model_type="llama",
        hidden_size=HIDDEN,
        num_hidden_layers=LAYERS,
        intermediate_size=FFN,
        num_attention_heads=HEADS,
        num_key_value_heads=KV_HEADS,
        rms_norm_eps=1e-5,
        vocab_size=VOCAB,
        head_dim=HEAD_DIM,
        rope_theta=10000.0,
        tie_word_embeddings=False,
        rope_scaling=rope_scaling,
    )
    reference = llama.Model(args)
    reference.load_weights([(k, mx.array(v)) for k, v in weights.items()])
    return reference


def test_llama3_rope_scaling_is_recovered_from_rope_freqs(tmp_path: Path) -> None:
    import mlx.core as mx
    from mlx_lm import load

    from osaurus.models.gguf_import import llama3_rope_factors

    # A small original context makes most frequencies scaled, so positions 0..31 show it.
    scaling = {
        "rope_type": "llama3",
        "factor": 8.0,
        "low_freq_factor": 1.0,
        "high_freq_factor": 4.0,
        "original_max_position_embeddings": 16,
    }
    factors = llama3_rope_factors(10000.0, HEAD_DIM, 8.0, 1.0, 4.0, 16)
    weights = _random_weights(np.random.default_rng(1))
    held = _write(tmp_path / "l3.gguf", weights, "F32", rope_freqs=factors, original_context=16)
    imported, _ = load(str(import_gguf(tmp_path / "l3.gguf", tmp_path / "models", "l3")))

    tokens = mx.array([list(range(3, 35))])
    got = imported(tokens)
    scaled, unscaled = _reference_llama(held, scaling)(tokens), _reference_llama(held)(tokens)
    scale = mx.abs(scaled).max().item()
    assert mx.abs(got - scaled).max().item() < 0.02 * scale
    assert mx.abs(got - unscaled).max().item() > 0.1 * scale  # the scaling matters here


def test_rope_freqs_that_are_not_llama3_are_refused(tmp_path: Path) -> None:
    from osaurus.errors import UnsupportedModel

    odd = np.linspace(1.0, 3.0, HEAD_DIM // 2)
    _write(tmp_path / "odd.gguf", _random_weights(np.random.default_rng(2)), "F32", rope_freqs=odd)
    with pytest.raises(UnsupportedModel, match="rope_freqs"):
        import_gguf(tmp_path / "odd.gguf", tmp_path / "models", "odd")
    assert not (tmp_path / "models" / "odd").exists()
