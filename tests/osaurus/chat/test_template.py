"""Chat templates: the model's Jinja template, system merging, the transcript fallback, BOS."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from transformers import AutoTokenizer

from osaurus.chat.messages import Message
from osaurus.chat.template import encode_prompt, render_chat
from osaurus.chat.tools import Tool, ToolCall


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


WEATHER = Tool("get_weather", "Weather in a city", {"type": "object", "properties": {"city": {}}})
CALL = ToolCall("call_1", "get_weather", '{"city": "Paris"}')
TOOL_TURNS = [
    Message("user", "Weather in Paris?"),
    Message("assistant", "", tool_calls=(CALL,)),
    Message("tool", '{"celsius": 21}', tool_call_id="call_1"),
]

# The shape of a tools-aware template (Qwen, Llama 3.1, Hermes...), reduced to what we check.
NATIVE = (
    "{% if tools %}<tools>{% for t in tools %}{{ t.function.name }};{% endfor %}</tools>{% endif %}"
    "{% for m in messages %}[{{ m.role }}]{{ m.content }}"
    "{% for c in m.tool_calls or [] %}<call {{ c.id }} {{ c.function.name }} "
    "{{ c.function.arguments.city }}>{% endfor %}"
    "{% if m.tool_call_id %}<result of {{ m.tool_call_id }}>{% endif %}{% endfor %}"
)


def test_a_template_that_takes_tools_gets_them_natively(tokenizer) -> None:
    tokenizer.chat_template = NATIVE
    text = render_chat(tokenizer, TOOL_TURNS, [WEATHER]).text
    assert text.startswith("<tools>get_weather;</tools>")
    assert "<call call_1 get_weather Paris>" in text  # arguments passed as an object
    assert "[tool]{&#34;celsius&#34;: 21}" in text or '[tool]{"celsius": 21}' in text
    assert "<result of call_1>" in text


def test_a_template_without_tools_gets_a_tools_block_and_text_turns(tokenizer) -> None:
    text = render_chat(tokenizer, TOOL_TURNS, [WEATHER]).text
    system = text[: text.index("<|im_end|>")]
    assert '"name": "get_weather"' in system and '{"name": "<tool name>"' in system
    assert '{"name": "get_weather", "arguments": {"city": "Paris"}}' in text  # the call as text
    assert '<|im_start|>user\nResult of tool call call_1: {"celsius": 21}' in text


# Properties, over conversations hypothesis makes up: any roles in any order, any text (template
# syntax, markup, control characters), tool calls whose arguments may not even be JSON.
_text = st.text(max_size=40)
_calls = st.lists(
    st.builds(
        ToolCall,
        id=_text,
        name=st.text(min_size=1, max_size=20),
        arguments=st.one_of(
            st.dictionaries(st.text(max_size=8), st.integers() | _text, max_size=3).map(json.dumps),
            _text,  # what a client may send back: not always JSON, not always an object
        ),
    ),
    max_size=2,
)
_messages = st.lists(
    st.one_of(
        st.builds(Message, role=st.sampled_from(["system", "user"]), content=_text),
        st.builds(Message, role=st.just("assistant"), content=_text, tool_calls=_calls),
        st.builds(Message, role=st.just("tool"), content=_text, tool_call_id=_text),
    ),
    min_size=1,
    max_size=6,
)


_quiet = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@_quiet
@given(messages=_messages)
def test_any_conversation_renders_with_every_turn_in_order(tokenizer, messages) -> None:
    """With the model's own template: no fallback, and each message's text is in the prompt in
    the conversation's order (the system messages merged, first)."""
    text = render_chat(tokenizer, messages).text
    ordered = [m for m in messages if m.role == "system"]
    ordered += [m for m in messages if m.role != "system"]
    position = 0
    for m in ordered:
        found = text.find(m.content, position)
        assert found >= 0, (m, text)
        position = found + len(m.content)
    assert text.endswith("<|im_start|>assistant\n")


@_quiet
@given(messages=_messages)
def test_any_conversation_renders_natively_with_tools(tokenizer, messages) -> None:
    """A tools-aware template gets every call, its arguments an object when they are JSON."""
    tokenizer.chat_template = NATIVE
    rendered = render_chat(tokenizer, messages, [WEATHER])
    assert not rendered.used_fallback
    assert rendered.text.startswith("<tools>get_weather;</tools>")
    calls = [c for m in messages if m.role == "assistant" for c in m.tool_calls]
    assert rendered.text.count("<call ") == len(calls)


@_quiet
@given(messages=_messages)
def test_any_conversation_is_one_prompt_the_tokenizer_takes(tokenizer, messages) -> None:
    ids = encode_prompt(tokenizer, render_chat(tokenizer, messages).text)
    assert ids and all(isinstance(i, int) for i in ids)
