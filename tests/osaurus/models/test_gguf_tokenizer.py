"""Tokenizers rebuilt from GGUF metadata encode exactly as the originals do."""

from __future__ import annotations

from pathlib import Path

import pytest
import sentencepiece as spm
from sentencepiece import sentencepiece_model_pb2 as sp_pb2
from transformers import AutoTokenizer

from osaurus.models.gguf_tokenizer import write_tokenizer

SAMPLES = [
    "Hello world",
    "The  quick\nbrown fox\tjumps",
    "café ñ 東京 12345 🙂",
    " leading space",
    "x",
    "",
]


@pytest.fixture(scope="module")
def sentencepiece_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small Llama-style SentencePiece BPE model: identity normalization, byte fallback."""
    directory = tmp_path_factory.mktemp("spm")
    corpus = directory / "corpus.txt"
    corpus.write_text(
        "The quick brown fox jumps over the lazy dog.\n" * 30
        + "Hello world, numbers 12345 and café ñ.\n" * 30
    )
    spm.SentencePieceTrainer.train(
        input=str(corpus),
        model_prefix=str(directory / "orig"),
        vocab_size=340,
        model_type="bpe",
        byte_fallback=True,
        character_coverage=1.0,
        normalization_rule_name="identity",
        remove_extra_whitespaces=False,
        unk_id=0,
        bos_id=1,
        eos_id=2,
        minloglevel=2,
    )
    return directory / "orig.model"


def _gguf_metadata(model_file: Path) -> dict:
    """The metadata llama.cpp's converter writes for a SentencePiece model."""
    proto = sp_pb2.ModelProto()
    proto.ParseFromString(model_file.read_bytes())
    return {
        "tokenizer.ggml.model": "llama",
        "tokenizer.ggml.tokens": [p.piece for p in proto.pieces],
        "tokenizer.ggml.scores": [p.score for p in proto.pieces],
        "tokenizer.ggml.token_type": [int(p.type) for p in proto.pieces],
        "tokenizer.ggml.unknown_token_id": 0,
        "tokenizer.ggml.bos_token_id": 1,
        "tokenizer.ggml.eos_token_id": 2,
        "tokenizer.ggml.add_bos_token": True,
        "tokenizer.chat_template": "{% for m in messages %}{{ m.content }}{% endfor %}",
    }


def test_sentencepiece_vocabulary_encodes_like_sentencepiece(
    sentencepiece_model: Path, tmp_path: Path
) -> None:
    write_tokenizer(_gguf_metadata(sentencepiece_model), tmp_path)
    original = spm.SentencePieceProcessor(model_file=str(sentencepiece_model))
    rebuilt = AutoTokenizer.from_pretrained(str(tmp_path))
    for text in SAMPLES:
        assert rebuilt.encode(text, add_special_tokens=False) == original.encode(text), text
        assert rebuilt.decode(original.encode(text)) == original.decode(original.encode(text))
    # BOS is added once, as llama.cpp's add_bos_token says.
    assert rebuilt.encode("hi")[0] == 1 and rebuilt.encode("hi").count(1) == 1
    assert rebuilt.eos_token == "</s>" and rebuilt.chat_template


def test_byte_level_vocabulary_round_trips(tmp_path: Path) -> None:
    byte_chars = [chr(c) for c in range(0x21, 0x7F)] + ["Ġ", "Ċ"]
    meta = {
        "tokenizer.ggml.model": "gpt2",
        "tokenizer.ggml.pre": "default",
        "tokenizer.ggml.tokens": ["<|end|>", *byte_chars, "Ġw", "Ġwo"],
        "tokenizer.ggml.token_type": [3] + [1] * (len(byte_chars) + 2),
        "tokenizer.ggml.merges": ["Ġ w", "Ġw o"],
        "tokenizer.ggml.eos_token_id": 0,
    }
    write_tokenizer(meta, tmp_path)
    tokenizer = AutoTokenizer.from_pretrained(str(tmp_path))
    ids = tokenizer.encode("hello wow<|end|>", add_special_tokens=False)
    assert ids[-1] == 0  # the control token stays whole
    assert tokenizer.convert_ids_to_tokens(ids[5]) == "Ġwo"  # merges applied
    assert tokenizer.decode(ids) == "hello wow<|end|>"


def test_mlx_lm_streams_text_back_from_a_sentencepiece_vocabulary(
    sentencepiece_model: Path, tmp_path: Path
) -> None:
    from mlx_lm.tokenizer_utils import load as load_tokenizer

    write_tokenizer(_gguf_metadata(sentencepiece_model), tmp_path)
    tokenizer = load_tokenizer(tmp_path)
    text = "Hello world, café ñ 東京 🙂"
    detokenizer = tokenizer.detokenizer
    detokenizer.reset()
    streamed = ""
    for token in tokenizer.encode(text, add_special_tokens=False):
        detokenizer.add_token(token)
        streamed += detokenizer.last_segment
    detokenizer.finalize()
    assert streamed + detokenizer.last_segment == text
