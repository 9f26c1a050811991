"""Rebuild a Hugging Face tokenizer from the vocabulary a GGUF file carries.

GGUF keeps the tokenizer as metadata (tokens, merges or scores, token types, special ids, the
chat template). What we write from it is what mlx-lm loads: tokenizer.json and
tokenizer_config.json.

- Byte-level BPE (`tokenizer.ggml.model == "gpt2"`: SmolLM, Llama 3, Qwen...) is assembled with the
  `tokenizers` library from the vocabulary and merges; the pre-tokenizer follows llama.cpp's
  `tokenizer.ggml.pre` name.
- SentencePiece (`"llama"`: Llama 2, TinyLlama, Mistral v0.1...) is put back into the
  sentencepiece model proto llama.cpp read it from, and transformers' SentencePiece converter
  builds tokenizer.json from it (no PyTorch needed).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

SUPPORTED_TOKENIZERS = {"gpt2": "byte-level BPE", "llama": "SentencePiece"}

# GGUF token types (llama.cpp's llama_token_type); the same numbers as sentencepiece's piece types.
NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6

# llama.cpp's pre-tokenizer names -> how the text is split before byte-level BPE.
_DIGITS_THEN_GPT2 = {"smollm", "starcoder", "refact", "codeshell", "exaone", "minerva"}
_LLAMA3_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)
_LLAMA3_STYLE = {"llama3", "llama-bpe", "llama-v3", "dbrx", "smaug-bpe"}


def write_tokenizer(meta: dict[str, Any], directory: Path) -> None:
    """Write tokenizer.json and tokenizer_config.json for the GGUF metadata `meta`."""
    kind = meta.get("tokenizer.ggml.model")
    if kind == "gpt2":
        _byte_level_bpe(meta).save(str(directory / "tokenizer.json"))
    elif kind == "llama":
        _sentencepiece(meta, directory)
    else:  # checked before conversion starts; this is a guard
        raise ValueError(f"unsupported tokenizer model {kind!r}")
    config = _tokenizer_config(meta, default_add_bos=kind == "llama")
    (directory / "tokenizer_config.json").write_text(json.dumps(config, indent=2))


def _token(meta: dict[str, Any], key: str) -> str | None:
    tokens = meta["tokenizer.ggml.tokens"]
    idx = meta.get(f"tokenizer.ggml.{key}_token_id")
    return tokens[idx] if idx is not None and 0 <= idx < len(tokens) else None


def _tokenizer_config(meta: dict[str, Any], default_add_bos: bool) -> dict[str, Any]:
    bos = _token(meta, "bos")
    add_bos = bool(meta.get("tokenizer.ggml.add_bos_token", default_add_bos)) and bos is not None
    config: dict[str, Any] = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": bos,
        "eos_token": _token(meta, "eos"),
        "unk_token": _token(meta, "unknown"),
        "pad_token": _token(meta, "padding"),
        "add_bos_token": add_bos,
        "add_eos_token": False,
        "clean_up_tokenization_spaces": False,
        "model_max_length": int(meta.get("llama.context_length", 2048)),
        "chat_template": meta.get("tokenizer.chat_template"),
    }
    return {k: v for k, v in config.items() if v is not None}


def _byte_level_bpe(meta: dict[str, Any]):
    from tokenizers import (
        AddedToken,
        Regex,
        Tokenizer,
        decoders,
        models,
        pre_tokenizers,
        processors,
    )

    tokens: list[str] = meta["tokenizer.ggml.tokens"]
    token_types: list[int] = meta.get("tokenizer.ggml.token_type") or [NORMAL] * len(tokens)
    merges = [tuple(m.split(" ", 1)) for m in meta.get("tokenizer.ggml.merges", [])]
    vocab = {tok: i for i, tok in enumerate(tokens)}

    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=merges, fuse_unk=False))
    pre = meta.get("tokenizer.ggml.pre", "default")
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    if pre in _DIGITS_THEN_GPT2:
        tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
            [pre_tokenizers.Digits(individual_digits=True), byte_level]
        )
    elif pre in _LLAMA3_STYLE:
        tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
            [
                pre_tokenizers.Split(Regex(_LLAMA3_SPLIT), behavior="isolated"),
                pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
            ]
        )
    else:
        tokenizer.pre_tokenizer = byte_level
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.add_tokens(
        [
            AddedToken(tokens[i], special=(t == CONTROL), normalized=False)
            for i, t in enumerate(token_types)
            if t in (CONTROL, USER_DEFINED)
        ]
    )
    bos = _token(meta, "bos")
    if bos is not None and meta.get("tokenizer.ggml.add_bos_token", False):
        tokenizer.post_processor = processors.TemplateProcessing(
            single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, vocab[bos])]
        )
    else:
        tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    return tokenizer


def _sentencepiece(meta: dict[str, Any], directory: Path) -> None:
    from sentencepiece import sentencepiece_model_pb2 as sp_pb2
    from tokenizers import AddedToken, processors
    from transformers.convert_slow_tokenizer import SpmConverter

    tokens: list[str] = meta["tokenizer.ggml.tokens"]
    scores: list[float] = meta.get("tokenizer.ggml.scores") or [0.0] * len(tokens)
    types: list[int] = meta.get("tokenizer.ggml.token_type") or [NORMAL] * len(tokens)

    proto = sp_pb2.ModelProto()
    proto.trainer_spec.model_type = sp_pb2.TrainerSpec.BPE
    proto.trainer_spec.byte_fallback = BYTE in types
    for key, field in (
        ("unknown", "unk_id"),
        ("bos", "bos_id"),
        ("eos", "eos_id"),
        ("padding", "pad_id"),
    ):
        setattr(proto.trainer_spec, field, int(meta.get(f"tokenizer.ggml.{key}_token_id", -1)))
    # Llama's SentencePiece models: no normalization, spaces kept, a space prefixed to the text.
    proto.normalizer_spec.name = "identity"
    proto.normalizer_spec.add_dummy_prefix = bool(meta.get("tokenizer.ggml.add_space_prefix", True))
    proto.normalizer_spec.remove_extra_whitespaces = False
    proto.normalizer_spec.escape_whitespaces = True
    for piece, score, kind in zip(tokens, scores, types, strict=True):
        entry = proto.pieces.add()
        entry.piece, entry.score, entry.type = piece, float(score), int(kind)
    # transformers' SpmConverter follows the model's own settings so that the result encodes
    # exactly like SentencePieceProcessor (merges ranked by score, byte fallback, dummy prefix).
    vocab = {piece: i for i, piece in enumerate(tokens)}
    tokenizer = SpmConverter.build_tokenizer_from_spm_proto(proto, vocab)
    bos = _token(meta, "bos")
    if bos is not None and meta.get("tokenizer.ggml.add_bos_token", True):
        tokenizer.post_processor = processors.TemplateProcessing(
            single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, vocab[bos])]
        )
    tokenizer.add_special_tokens(
        [
            AddedToken(tokens[i], special=True, normalized=False)
            for i, kind in enumerate(types)
            if kind in (CONTROL, UNKNOWN)
        ]
    )
    tokenizer.save(str(directory / "tokenizer.json"))
