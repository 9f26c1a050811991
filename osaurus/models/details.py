"""What a model is, read from its files without loading it: parameter count, chat template and
capabilities. (ListModels reads these for every model, so each is a small read: the
safetensors headers, tokenizer_config.json.)"""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path
from typing import Any

COMPLETION, TOOLS, THINKING, EMBEDDING = "completion", "tools", "thinking", "embedding"
# Encoder families osaurus embeds with (osaurus.engine.encoder).
ENCODER_TYPES = ("bert",)
_THINK_START = "<think>"


def _safetensors_header(path: Path) -> dict[str, Any]:
    with path.open("rb") as f:
        (length,) = struct.unpack("<Q", f.read(8))
        return json.loads(f.read(length))


def parameter_count(path: Path, config: dict[str, Any]) -> int:
    """Parameters of the weights; a quantized weight (uint32 words packing `bits`-bit values)
    counts unpacked, its scales and biases not at all."""
    quant = config.get("quantization") or config.get("quantization_config") or {}
    if not isinstance(quant, dict):
        quant = {}
    total = 0
    for file in path.glob("*.safetensors"):
        try:
            header = _safetensors_header(file)
        except (OSError, ValueError, struct.error):
            continue  # a broken file: the count is what can be read
        for name, tensor in header.items():
            if name == "__metadata__" or name.endswith((".scales", ".biases")):
                continue
            count = math.prod(tensor.get("shape", []))
            if tensor.get("dtype") == "U32" and "bits" in quant:
                layer = quant.get(name.removesuffix(".weight"))  # a layer's own, e.g. 8-bit
                bits = layer["bits"] if isinstance(layer, dict) else quant["bits"]
                count = count * 32 // bits
            total += count
    return total


def chat_template(path: Path) -> str:
    """The model's Jinja chat template (tokenizer_config.json, or chat_template.jinja), or ""."""
    standalone = path / "chat_template.jinja"
    if standalone.is_file():
        return standalone.read_text()
    try:
        config = json.loads((path / "tokenizer_config.json").read_text())
    except (OSError, ValueError):
        return ""
    template = config.get("chat_template") or ""
    if isinstance(template, list):  # named templates: the default one
        named = {t.get("name"): t.get("template", "") for t in template if isinstance(t, dict)}
        template = named.get("default") or next(iter(named.values()), "")
    return template if isinstance(template, str) else ""


def capabilities(path: Path, config: dict[str, Any]) -> tuple[str, ...]:
    """embedding for an encoder (a sentence-transformers model); else completion, tools when
    its template renders them (as osaurus.chat.template decides), thinking when it has
    reasoning markers."""
    if config.get("model_type") in ENCODER_TYPES:
        return (EMBEDDING,)
    template = chat_template(path)
    found = [COMPLETION]
    if "tools" in template:
        found.append(TOOLS)
    if _THINK_START in template:
        found.append(THINKING)
    return tuple(found)
