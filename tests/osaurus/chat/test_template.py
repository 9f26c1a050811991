"""Chat templates: the model's Jinja template, system merging, the transcript fallback, BOS."""

from __future__ import annotations

from pathlib import Path

import pytest
from transformers import AutoTokenizer

from osaurus.chat.messages import Message
from osaurus.chat.template import encode_prompt, render_chat


@pytest.fixture
def tokenizer(models_dir: Path, model_id: str):
    return AutoTokenizer.from_pretrained(str(models_dir / model_id))


def test_renders_the_models_own_template(tokenizer) -> None:
    rendered = render_chat(tokenizer, [Message("user", "Hi")])
    assert not rendered.used_fallback
    assert rendered.text.endswith("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n")


def test_system_messages_are_merged_and_first(tokenizer) -> None:
    messages = [
        Message("user", "Hi"),
        Message("system", "Be brief."),
        Message("system", "Be kind."),
    ]
    text = render_chat(tokenizer, messages).text
    assert text.startswith(
        "<|im_start|>system\nBe brief.\n\nBe kind.<|im_end|>\n<|im_start|>user\nHi"
    )


def test_named_template_list_uses_default(tokenizer) -> None:
    tokenizer.chat_template = {
        "default": "{% for m in messages %}[{{ m.role }}]{{ m.content }}{% endfor %}",
        "tool_use": "TOOLS",
    }
    assert render_chat(tokenizer, [Message("user", "x")]).text == "[user]x"


def test_template_that_raises_falls_back_to_transcript(tokenizer) -> None:
    tokenizer.chat_template = "{{ raise_exception('roles must alternate') }}"
    rendered = render_chat(tokenizer, [Message("system", "S"), Message("user", "U")])
    assert rendered.used_fallback
    assert rendered.text == "System: S\nUser: U\nAssistant:"


def test_model_without_template_uses_transcript(tokenizer) -> None:
    tokenizer.chat_template = None
    assert render_chat(tokenizer, [Message("user", "U")]).used_fallback


def test_bos_is_never_doubled(tokenizer) -> None:
    bos_id = tokenizer.convert_tokens_to_ids(tokenizer.bos_token)
    tokenizer.chat_template = "{{ bos_token }}{% for m in messages %}{{ m.content }}{% endfor %}"
    text = render_chat(tokenizer, [Message("user", "hello")]).text
    ids = encode_prompt(tokenizer, text)
    assert ids.count(bos_id) == 1 and ids[0] == bos_id
