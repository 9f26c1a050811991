"""Translate the model manager's answers into Ollama's objects: /api/tags, /api/ps, /api/show."""

from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime, timezone
from typing import Any

from osaurus.v1 import model_pb2
from rest_bridge.capabilities import capability_words
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


def parameter_size(count: int) -> str:
    """135M, 1.2B: how Ollama (and model cards) write sizes; "" when unknown."""
    for unit, scale in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if count >= scale:
            value = count / scale
            return (
                f"{value:.0f}{unit}" if value >= 100 else f"{value:.1f}".removesuffix(".0") + unit
            )
    return str(count) if count else ""


def details(model: model_pb2.Model) -> dict[str, Any]:
    return {
        "parent_model": "",
        "format": "mlx",  # safetensors in MLX's layout, not GGUF
        "family": model.architecture,
        "families": [model.architecture] if model.architecture else None,
        "parameter_size": parameter_size(model.parameter_count),
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


# Ollama's model_info keys (GGUF metadata names) from config.json's, per architecture prefix.
_MODEL_INFO = {
    "embedding_length": "hidden_size",
    "block_count": "num_hidden_layers",
    "feed_forward_length": "intermediate_size",
    "attention.head_count": "num_attention_heads",
    "attention.head_count_kv": "num_key_value_heads",
    "attention.layer_norm_rms_epsilon": "rms_norm_eps",
    "rope.freq_base": "rope_theta",
    "vocab_size": "vocab_size",
}


def model_info(model: model_pb2.Model) -> dict[str, Any]:
    """The keys clients read (Open WebUI, Continue: the architecture, its context length)."""
    arch = model.architecture or "unknown"
    config = json.loads(model.config_json or "{}")
    info: dict[str, Any] = {
        "general.architecture": arch,
        "general.parameter_count": model.parameter_count,
        f"{arch}.context_length": model.context_length,
    }
    for key, name in _MODEL_INFO.items():
        if isinstance(config.get(name), int | float):
            info[f"{arch}.{key}"] = config[name]
    return info


def show(model: model_pb2.Model) -> dict[str, Any]:
    return {
        "modelfile": f"# osaurus serves {model.id} from its files\nFROM {model.path}\n",
        "parameters": "",
        "template": model.chat_template,
        "details": details(model),
        "model_info": model_info(model),
        "capabilities": capability_words(model.capabilities),
        "modified_at": _time(model.modified_time),
    }
