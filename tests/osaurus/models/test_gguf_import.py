"""GGUF import: the real SmolLM2 file round trip, and files it must refuse without leftovers."""

from __future__ import annotations

import json
from pathlib import Path

import gguf
import numpy as np
import pytest

from osaurus.errors import AlreadyExists, NotFound, UnsupportedModel
from osaurus.models import gguf_import
from osaurus.models.gguf_import import import_gguf


def _write_gguf(path: Path, arch: str, tensors: dict[str, tuple[np.ndarray, object]]) -> Path:
    writer = gguf.GGUFWriter(str(path), arch)
    writer.add_tokenizer_model("gpt2")
    for name, (data, qtype) in tensors.items():
        if qtype is None:
            writer.add_tensor(name, data)
        else:
            writer.add_tensor(name, data, raw_shape=data.shape, raw_dtype=qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def _listing(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


@pytest.fixture(scope="module")
def imported(gguf_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return import_gguf(gguf_path, tmp_path_factory.mktemp("import"), "SmolLM2-Test".lower())


def test_imported_model_answers_paris_at_temperature_zero(imported: Path) -> None:
    from mlx_lm import generate, load

    model, tokenizer = load(str(imported))
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "Name the capital of France."}],
        add_generation_prompt=True,
        tokenize=False,
    )
    assert "Paris" in generate(model, tokenizer, prompt, max_tokens=20)


def test_import_writes_config_with_per_layer_quantization(imported: Path) -> None:
    config = json.loads((imported / "config.json").read_text())
    assert config["model_type"] == "llama"
    assert config["max_position_embeddings"] == 8192
    assert config["tie_word_embeddings"] is True
    # Q4_1 file: 4-bit layers, but the token embedding is Q8_0.
    assert config["quantization"]["bits"] == 4
    assert config["quantization"]["model.embed_tokens"]["bits"] == 8
    tokenizer_config = json.loads((imported / "tokenizer_config.json").read_text())
    assert "<|im_start|>" in tokenizer_config["chat_template"]
    assert tokenizer_config["eos_token"] == "<|im_end|>"


def test_tokenizer_round_trips_text_and_keeps_special_tokens_whole(imported: Path) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(imported))
    for text in ["Hello world", "  spaces\tand\nnewlines ", "digits 12345", "café ñ 東京 🙂", ""]:
        ids = tokenizer.encode(text, add_special_tokens=False)
        assert tokenizer.decode(ids) == text
    assert tokenizer.encode("<|im_start|>user", add_special_tokens=False)[0] == 1
    # SmolLM2 splits numbers into single digits.
    assert len(tokenizer.encode("12345", add_special_tokens=False)) == 5


def test_unpermute_inverts_llama_cpp_permutation() -> None:
    import mlx.core as mx

    rows, n_head = 12, 3
    original = mx.arange(rows * 4).reshape(rows, 4)
    # llama.cpp's permute, as its convert script writes it.
    permuted = original.reshape(n_head, 2, rows // n_head // 2, 4).swapaxes(1, 2).reshape(rows, 4)
    assert mx.array_equal(gguf_import._unpermute_rows(permuted, n_head), original).item()


def test_unsupported_architecture_is_named_and_nothing_is_written(tmp_path: Path) -> None:
    source = _write_gguf(
        tmp_path / "mamba.gguf",
        "mamba",
        {"token_embd.weight": (np.zeros((4, 8), np.float32), None)},
    )
    models = tmp_path / "models"
    models.mkdir()
    with pytest.raises(UnsupportedModel, match="mamba"):
        import_gguf(source, models)
    assert _listing(models) == []


def test_unsupported_tensor_type_is_named(tmp_path: Path) -> None:
    q5_0_blocks = np.zeros((1, 22 * 8), np.uint8)  # eight 32-weight Q5_0 blocks
    source = _write_gguf(
        tmp_path / "k.gguf",
        "llama",
        {"blk.0.attn_q.weight": (q5_0_blocks, gguf.GGMLQuantizationType.Q5_0)},
    )
    models = tmp_path / "models"
    models.mkdir()
    with pytest.raises(UnsupportedModel, match="Q5_0"):
        import_gguf(source, models)
    assert _listing(models) == []


def test_failure_while_writing_leaves_nothing(
    gguf_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlx.core as mx

    def disk_full(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(mx, "save_safetensors", disk_full)
    with pytest.raises(OSError, match="No space"):
        import_gguf(gguf_path, tmp_path, "broken")
    assert _listing(tmp_path) == []


def test_existing_model_is_not_overwritten(gguf_path: Path, tmp_path: Path) -> None:
    (tmp_path / "taken").mkdir()
    with pytest.raises(AlreadyExists):
        import_gguf(gguf_path, tmp_path, "taken")


def test_missing_file_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(NotFound):
        import_gguf(tmp_path / "nope.gguf", tmp_path)
