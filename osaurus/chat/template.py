"""Turn chat messages into the prompt text a model was trained on.

The model's Jinja `chat_template` is rendered by transformers' `apply_chat_template` (a string or a
list of named templates; it passes bos/eos tokens and add_generation_prompt). System messages are
merged into one and put first, since many templates accept exactly one, at the top. When a model
has no template, or its template refuses the conversation, a plain transcript is used instead.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from osaurus.chat.messages import Message
from osaurus.chat.tools import Tool, tools_prompt

log = logging.getLogger(__name__)

# Stop strings added when the transcript fallback is used, so the model does not write the
# user's next turn.
TRANSCRIPT_STOPS = ("\nUser:", "\nSystem:")


@dataclass(frozen=True)
class RenderedPrompt:
    text: str
    used_fallback: bool


def normalize_messages(
    messages: list[Message], tools: list[Tool] | None = None, native_tools: bool = False
) -> list[dict[str, Any]]:
    """One system message first; tool calls and results in the template's terms when it knows
    tools (`native_tools`), else as text (calls as the JSON we ask for, results as user turns)."""
    system = "\n\n".join(m.content for m in messages if m.role == "system")
    if tools and not native_tools:
        system = "\n\n".join(part for part in (system, tools_prompt(tools)) if part)
    rest = []
    for m in messages:
        if m.role == "system":
            continue
        entry: dict[str, Any] = {"role": m.role, "content": m.content}
        if m.name:
            entry["name"] = m.name
        if m.tool_calls and native_tools:
            entry["tool_calls"] = [
                {
                    "id": c.id,
                    "type": "function",
                    "function": {"name": c.name, "arguments": _arguments(c.arguments)},
                }
                for c in m.tool_calls
            ]
        elif m.tool_calls:
            calls = [
                json.dumps({"name": c.name, "arguments": _arguments(c.arguments)})
                for c in m.tool_calls
            ]
            entry["content"] = "\n".join(part for part in (m.content, *calls) if part)
        if m.role == "tool" and native_tools:
            entry["tool_call_id"] = m.tool_call_id
        elif m.role == "tool":
            entry = {
                "role": "user",
                "content": f"Result of tool call {m.tool_call_id}: {m.content}",
            }
        rest.append(entry)
    given_system = system or any(m.role == "system" for m in messages)
    return ([{"role": "system", "content": system}] if given_system else []) + rest


def _arguments(text: str) -> Any:
    """A call's arguments as the object templates expect. A client sends back the calls it got,
    but it may send anything: text that is not JSON is passed on as it is, not refused."""
    try:
        return json.loads(text or "{}")
    except json.JSONDecodeError:
        return text


def template_knows_tools(tokenizer: Any) -> bool:
    template = getattr(tokenizer, "chat_template", None)
    text = template if isinstance(template, str) else str(template or "")
    return "tools" in text


def transcript(messages: list[dict[str, Any]]) -> str:
    lines = [f"{m['role'].capitalize()}: {m['content']}" for m in messages]
    return "\n".join([*lines, "Assistant:"])


def template_switches(request: Any) -> dict[str, Any]:
    """The variables reasoning templates read (Qwen3's `enable_thinking`, gpt-oss's
    `reasoning_effort`) from a request that sets them; templates ignore variables they don't use."""
    switches: dict[str, Any] = {}
    if request.thinking is not None:
        switches["enable_thinking"] = request.thinking
    if request.reasoning_effort:
        switches["reasoning_effort"] = request.reasoning_effort
    return switches


def render_chat(
    tokenizer: Any,
    messages: list[Message],
    tools: list[Tool] | None = None,
    switches: dict[str, Any] | None = None,
) -> RenderedPrompt:
    """`tokenizer` is a transformers tokenizer (or mlx-lm's wrapper around one). Templates that
    take `tools` get them natively; for the others the tools are described in the system prompt.
    `switches` are extra template variables (see `template_switches`)."""
    native = bool(tools) and template_knows_tools(tokenizer)
    normalized = normalize_messages(messages, tools, native)
    if getattr(tokenizer, "chat_template", None):
        try:
            extra = dict(switches or {})
            if native and tools:
                extra["tools"] = [t.openai() for t in tools]
            text = tokenizer.apply_chat_template(
                normalized, add_generation_prompt=True, tokenize=False, **extra
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
