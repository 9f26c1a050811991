"""Translate the model manager's answers into Ollama's objects: /api/tags, /api/ps, /api/show."""

from __future__ import annotations

import hashlib
import re
from datetime import datetime, timezone
from typing import Any

from osaurus.v1 import model_pb2
from rest_bridge.ollama.chat import ollama_name


def _time(stamp: Any) -> str:
    moment = datetime.fromtimestamp(stamp.seconds + stamp.nanos / 1e9, timezone.utc)
    return moment.isoformat().replace("+00:00", "Z")


def digest(model: model_pb2.Model) -> str:
    """Ollama names a model's build by a sha256; ours changes when the model's files do."""
    key = f"{model.id}\0{model.size_bytes}\0{model.modified_time.seconds}"
    return hashlib.sha256(key.encode()).hexdigest()


def quantization_level(quantization: str) -> str:
    """ "4-bit (group 32)" -> "Q4_G32" (Ollama's labels say the bits first); "none" -> "F16"
    would be a guess, so float weights say "unquantized"."""
    found = re.match(r"(\d+)-bit \(group (\d+)\)", quantization)
    return f"Q{found[1]}_G{found[2]}" if found else "unquantized"


def details(model: model_pb2.Model) -> dict[str, Any]:
    return {
        "parent_model": "",
        "format": "mlx",  # safetensors in MLX's layout, not GGUF
        "family": model.architecture,
        "families": [model.architecture] if model.architecture else None,
        "parameter_size": "",
        "quantization_level": quantization_level(model.quantization),
    }


def tag(model: model_pb2.Model) -> dict[str, Any]:
    name = ollama_name(model.id)
    return {
        "name": name,
        "model": name,
        "modified_at": _time(model.modified_time),
        "size": model.size_bytes,
        "digest": digest(model),
        "details": details(model),
    }


def running(model: model_pb2.Model) -> dict[str, Any]:
    out = {
        "name": ollama_name(model.id),
        "model": ollama_name(model.id),
        "size": model.memory_bytes,
        "digest": digest(model),
        "details": details(model),
        "size_vram": 0,  # the CPU backend: no device memory
        "context_length": model.context_length,
    }
    if model.HasField("expire_time"):
        out["expires_at"] = _time(model.expire_time)
    return out


def show(model: model_pb2.Model) -> dict[str, Any]:
    arch = model.architecture or "unknown"
    return {
        "modelfile": f"# osaurus serves {model.id} from {model.path}\nFROM {model.path}\n",
        "parameters": "",
        "template": "",
        "details": details(model),
        "model_info": {
            "general.architecture": arch,
            f"{arch}.context_length": model.context_length,
        },
        "capabilities": ["completion"],
        "modified_at": _time(model.modified_time),
    }
