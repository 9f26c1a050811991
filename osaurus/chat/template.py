"""Turn chat messages into the prompt text a model was trained on.

The model's Jinja `chat_template` is rendered by transformers' `apply_chat_template` (a string or a
list of named templates; it passes bos/eos tokens and add_generation_prompt). System messages are
merged into one and put first, since many templates accept exactly one, at the top. When a model
has no template, or its template refuses the conversation, a plain transcript is used instead.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from osaurus.chat.messages import Message

log = logging.getLogger(__name__)

# Stop strings added when the transcript fallback is used, so the model does not write the
# user's next turn.
TRANSCRIPT_STOPS = ("\nUser:", "\nSystem:")


@dataclass(frozen=True)
class RenderedPrompt:
    text: str
    used_fallback: bool


def normalize_messages(messages: list[Message]) -> list[dict[str, Any]]:
    system = "\n\n".join(m.content for m in messages if m.role == "system")
    rest = []
    for m in messages:
        if m.role == "system":
            continue
        entry: dict[str, Any] = {"role": m.role, "content": m.content}
        if m.name:
            entry["name"] = m.name
        rest.append(entry)
    return ([{"role": "system", "content": system}] if system else []) + rest


def transcript(messages: list[dict[str, Any]]) -> str:
    lines = [f"{m['role'].capitalize()}: {m['content']}" for m in messages]
    return "\n".join([*lines, "Assistant:"])


def render_chat(tokenizer: Any, messages: list[Message]) -> RenderedPrompt:
    """`tokenizer` is a transformers tokenizer (or mlx-lm's wrapper around one)."""
    normalized = normalize_messages(messages)
    if getattr(tokenizer, "chat_template", None):
        try:
            text = tokenizer.apply_chat_template(
                normalized, add_generation_prompt=True, tokenize=False
            )
            return RenderedPrompt(text=text, used_fallback=False)
        except Exception as exc:  # a template may raise anything (jinja errors, raise_exception)
            log.warning("chat template failed (%s); using the plain transcript", exc)
    return RenderedPrompt(text=transcript(normalized), used_fallback=True)


def encode_prompt(tokenizer: Any, text: str) -> list[int]:
    """Tokenize a rendered prompt without doubling BOS: templates often write it themselves."""
    bos = getattr(tokenizer, "bos_token", None)
    add_special = bos is None or not text.startswith(bos)
    return list(tokenizer.encode(text, add_special_tokens=add_special))
