"""A reasoning variant of the test model, for the reasoning split end to end.

SmolLM2 does not think. This copy renames two of its unused special tokens to `<think>` and
`</think>` (not special, as in Qwen3, so they decode as text) and makes its chat template open the
thinking block after the generation prompt, as thinking templates do, with a first sentence of
thought (alone, the odd token makes this model end its turn at once), or an empty one when
`enable_thinking` is false (Qwen3's switch). mlx-lm then detects it as a thinking model, exactly
as it would a real one.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

RENAMED = {13: "<think>", 14: "</think>"}  # were <jupyter_code> and <jupyter_output>


def make_thinking_model(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    tokenizer_path = target / "tokenizer.json"
    tokenizer = json.loads(tokenizer_path.read_text())
    vocab = tokenizer["model"]["vocab"]
    for token in tokenizer["added_tokens"]:
        if token["id"] in RENAMED:
            del vocab[token["content"]]
            token["content"] = RENAMED[token["id"]]
            token["special"] = False
            vocab[token["content"]] = token["id"]
    tokenizer_path.write_text(json.dumps(tokenizer))
    config_path = target / "tokenizer_config.json"
    config = json.loads(config_path.read_text())
    opening = "'<|im_start|>assistant\n'"  # the template holds a real newline here
    assert opening in config["chat_template"]
    # Thinking on unless `enable_thinking` is false, then an empty thinking block, as Qwen3's.
    config["chat_template"] = config["chat_template"].replace(
        opening,
        "'<|im_start|>assistant\n' + ('<think>\n\n</think>\n\n'"
        " if enable_thinking is defined and enable_thinking is false"
        " else '<think>\nLet me think step by step.')",
    )
    config_path.write_text(json.dumps(config))
    return target
