"""The models directory: which models exist on disk, their ids and what they are.

A model is a directory holding config.json, *.safetensors weights and tokenizer files. Its id is
the directory name lower-cased; a directory nested one level (`org/name`) gets the id `org/name`.
Hidden directories (imports and downloads in progress) are never listed.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from osaurus.errors import AlreadyExists, InvalidArgument, ModelNotFound
from osaurus.models import details
from osaurus.models.staging import staging_dir

# A name, or org/name: what a models directory holds (no hidden or parent directories).
_MODEL_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?")


@dataclass(frozen=True)
class ModelInfo:
    id: str
    path: Path
    size_bytes: int
    architecture: str
    quantization: str
    context_length: int
    modified_time: float  # seconds since the epoch
    parameter_count: int = 0
    capabilities: tuple[str, ...] = ()  # see osaurus.models.details


def _is_model_dir(path: Path) -> bool:
    return (path / "config.json").is_file() and any(path.glob("*.safetensors"))


def _describe_quantization(config: dict[str, Any]) -> str:
    quant = config.get("quantization") or config.get("quantization_config")
    if not isinstance(quant, dict) or "bits" not in quant:
        return "none"
    return f"{quant['bits']}-bit (group {quant.get('group_size', 64)})"


def _context_length(config: dict[str, Any]) -> int:
    text = config.get("text_config", {})
    for key in ("max_position_embeddings", "max_sequence_length", "n_positions", "seq_length"):
        for source in (config, text):
            if isinstance(source.get(key), int):
                return source[key]
    return 0


def describe(model_id: str, path: Path) -> ModelInfo:
    config = json.loads((path / "config.json").read_text())
    files = [f.stat() for f in path.rglob("*") if f.is_file()]
    return ModelInfo(
        id=model_id,
        path=path,
        size_bytes=sum(st.st_size for st in files),
        architecture=str(config.get("model_type", "unknown")),
        quantization=_describe_quantization(config),
        context_length=_context_length(config),
        modified_time=max(st.st_mtime for st in files),
        parameter_count=details.parameter_count(path, config),
        capabilities=details.capabilities(path, config),
    )


class ModelRegistry:
    """Reads the models directory afresh on every call: the disk is the source of truth."""

    def __init__(self, models_dir: Path):
        self.models_dir = Path(models_dir)
        self.models_dir.mkdir(parents=True, exist_ok=True)

    def _scan(self) -> dict[str, Path]:
        found: dict[str, Path] = {}
        for entry in sorted(self.models_dir.iterdir()):
            if entry.name.startswith(".") or not entry.is_dir():
                continue
            if _is_model_dir(entry):
                found[entry.name.lower()] = entry
                continue
            for sub in sorted(entry.iterdir()):  # org/name layout
                if not sub.name.startswith(".") and sub.is_dir() and _is_model_dir(sub):
                    found[f"{entry.name}/{sub.name}".lower()] = sub
        return found

    def list(self) -> list[ModelInfo]:
        return [describe(model_id, path) for model_id, path in self._scan().items()]

    def resolve(self, model_id: str) -> tuple[str, Path]:
        """Find a model by id; a bare `name` also finds a unique `org/name`."""
        if not model_id:
            raise InvalidArgument("model is required", field="model")
        wanted = model_id.strip().lower()
        models = self._scan()
        if wanted in models:
            return wanted, models[wanted]
        by_name = [mid for mid in models if mid.rsplit("/", 1)[-1] == wanted]
        if len(by_name) == 1:
            return by_name[0], models[by_name[0]]
        available = ", ".join(models) or "none (import or download one first)"
        raise ModelNotFound(
            f"model {model_id!r} not found in {self.models_dir}; available: {available}",
            field="model",
        )

    def get(self, model_id: str) -> ModelInfo:
        resolved, path = self.resolve(model_id)
        return describe(resolved, path)

    def delete(self, model_id: str) -> int:
        """Remove a model directory; returns the bytes freed."""
        info = self.get(model_id)
        # Rename first so a half-deleted model never looks usable, then remove.
        trash = info.path.with_name(f".deleting-{info.path.name}")
        info.path.rename(trash)
        shutil.rmtree(trash, ignore_errors=True)
        return info.size_bytes

    def copy(self, source_id: str, destination_id: str) -> ModelInfo:
        """Copy a model's directory under a new id, through a hidden staging directory: the
        copy is listed only once whole."""
        _, source = self.resolve(source_id)
        wanted = destination_id.strip()
        if not _MODEL_ID.fullmatch(wanted):
            raise InvalidArgument(
                f"invalid model id {destination_id!r}: use a name or org/name of letters, digits, "
                "'.', '_' and '-'",
                field="destination_id",
            )
        target = self.models_dir / wanted
        if wanted.lower() in self._scan() or target.exists():
            raise AlreadyExists(f"a model {wanted!r} already exists", field="destination_id")
        staging = staging_dir(target.parent, "copy")
        try:
            shutil.copytree(source, staging, dirs_exist_ok=True)
            staging.rename(target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return describe(wanted.lower(), target)

    def is_empty(self) -> bool:
        return not self._scan()
