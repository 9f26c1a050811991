"""The models directory: ids, nested org/name layout, hidden work directories, lookups."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from osaurus.errors import AlreadyExists, InvalidArgument, ModelNotFound
from osaurus.models.registry import ModelRegistry


def _fake_model(path: Path, config: dict | None = None) -> Path:
    path.mkdir(parents=True)
    (path / "config.json").write_text(json.dumps(config or {"model_type": "llama"}))
    (path / "model.safetensors").write_bytes(b"\0" * 100)
    return path


def test_ids_are_lower_cased_directory_names_including_org(tmp_path: Path) -> None:
    _fake_model(tmp_path / "Llama-3.2-3B-Instruct-4bit")
    _fake_model(tmp_path / "mlx-community" / "Qwen3-0.6B-4bit")
    _fake_model(tmp_path / ".import-abc")  # an import in progress
    (tmp_path / "not-a-model").mkdir()
    registry = ModelRegistry(tmp_path)
    assert [m.id for m in registry.list()] == [
        "llama-3.2-3b-instruct-4bit",
        "mlx-community/qwen3-0.6b-4bit",
    ]


def test_describes_quantization_context_and_size(tmp_path: Path) -> None:
    config = {
        "model_type": "qwen3",
        "max_position_embeddings": 40960,
        "quantization": {"group_size": 64, "bits": 4},
    }
    _fake_model(tmp_path / "q", config)
    info = ModelRegistry(tmp_path).get("Q")
    assert (info.architecture, info.quantization, info.context_length) == (
        "qwen3",
        "4-bit (group 64)",
        40960,
    )
    assert info.size_bytes == 100 + len(json.dumps(config))


def test_resolve_by_bare_name_and_errors(tmp_path: Path) -> None:
    _fake_model(tmp_path / "mlx-community" / "Phi-4-mini")
    registry = ModelRegistry(tmp_path)
    assert registry.resolve("phi-4-mini")[0] == "mlx-community/phi-4-mini"
    with pytest.raises(ModelNotFound, match=r"gpt-4o.*mlx-community/phi-4-mini"):
        registry.resolve("gpt-4o")
    with pytest.raises(InvalidArgument):
        registry.resolve("")


def test_delete_removes_directory_and_reports_bytes(tmp_path: Path) -> None:
    _fake_model(tmp_path / "gone")
    registry = ModelRegistry(tmp_path)
    freed = registry.delete("gone")
    assert freed > 100 and list(tmp_path.iterdir()) == []
    with pytest.raises(ModelNotFound):
        registry.delete("gone")


def test_creates_missing_models_dir(tmp_path: Path) -> None:
    ModelRegistry(tmp_path / "a" / "b")
    assert (tmp_path / "a" / "b").is_dir()


def test_copy_appears_whole_under_the_new_id_or_not_at_all(tmp_path: Path) -> None:
    _fake_model(tmp_path / "base")
    registry = ModelRegistry(tmp_path)
    copied = registry.copy("BASE", "team/Base-Copy")
    assert (
        copied.id == "team/base-copy" and (tmp_path / "team" / "Base-Copy" / "config.json").exists()
    )
    assert [m.id for m in registry.list()] == ["base", "team/base-copy"]
    with pytest.raises(AlreadyExists):
        registry.copy("base", "team/base-copy")
    for bad in ("../up", ".hidden", "a/b/c", ""):
        with pytest.raises(InvalidArgument):
            registry.copy("base", bad)
    with pytest.raises(ModelNotFound):
        registry.copy("nope", "other")
    assert not [p for p in tmp_path.rglob(".copy-*")]  # no staging left behind
