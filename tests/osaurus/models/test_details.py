"""Model details read from files: parameter counts from safetensors headers (quantized weights
unpacked, a layer's own bits honoured), the chat template's places, capabilities."""

from __future__ import annotations

import json
import struct
from pathlib import Path

from osaurus.models import details


def _safetensors(path: Path, tensors: dict[str, tuple[str, list[int]]]) -> None:
    header = {
        name: {"dtype": d, "shape": s, "data_offsets": [0, 0]} for name, (d, s) in tensors.items()
    }
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw)


def test_parameter_count_unpacks_quantized_weights(tmp_path: Path) -> None:
    _safetensors(
        tmp_path / "model.safetensors",
        {
            "embed.weight": ("U32", [100, 16]),  # 8-bit: 4 values a word -> 6,400
            "embed.scales": ("F16", [100, 2]),
            "embed.biases": ("F16", [100, 2]),
            "proj.weight": ("U32", [10, 8]),  # 4-bit: 8 a word -> 640
            "norm.weight": ("F16", [64]),
        },
    )
    config = {"quantization": {"bits": 4, "group_size": 32, "embed": {"bits": 8, "group_size": 32}}}
    assert details.parameter_count(tmp_path, config) == 6_400 + 640 + 64
    assert details.parameter_count(tmp_path, {}) == 1_600 + 80 + 64  # words counted as is


def test_templates_and_capabilities(tmp_path: Path) -> None:
    assert details.chat_template(tmp_path) == ""
    assert details.capabilities(tmp_path, {}) == ("completion",)
    assert details.capabilities(tmp_path, {"model_type": "bert"}) == ("embedding",)
    config = {"chat_template": [{"name": "default", "template": "{{ tools }}<think>"}]}
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(config))
    assert details.chat_template(tmp_path) == "{{ tools }}<think>"
    assert details.capabilities(tmp_path, {}) == ("completion", "tools", "thinking")
    (tmp_path / "chat_template.jinja").write_text("plain")
    assert details.chat_template(tmp_path) == "plain"  # the file wins, as transformers reads it
