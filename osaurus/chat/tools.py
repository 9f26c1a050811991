"""Tools (function calling): what a request declares, what the model calls, and finding the calls
in what a model wrote.

Models with a tool-call format of their own (Qwen/Hermes `<tool_call>`, Mistral `[TOOL_CALLS]`,
...) are parsed by mlx-lm's per-family parsers. Every other model is told, in its prompt, to
answer with `{"name": ..., "arguments": {...}}`; `parse_tool_calls` finds such objects wherever a
model puts them: alone, in a list, inside code fences, after an "assistant:" prefix or a family's
marker (`<|python_tag|>`, `[TOOL_CALLS]`, `<tool_call>`), with `arguments` as an object or a JSON
string, or `parameters` in its place. A name that was not declared stays text.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, field
from typing import Any

from osaurus.errors import InvalidArgument


@dataclass(frozen=True)
class Tool:
    name: str
    description: str = ""
    parameters: dict[str, Any] = field(default_factory=dict)

    def openai(self) -> dict[str, Any]:
        """The OpenAI shape, which Hugging Face chat templates take as `tools`."""
        function: dict[str, Any] = {"name": self.name, "description": self.description}
        function["parameters"] = self.parameters or {"type": "object", "properties": {}}
        return {"type": "function", "function": function}


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    arguments: str  # JSON text of an object


@dataclass(frozen=True)
class ToolChoice:
    mode: str = "auto"  # "auto" | "none" | "required" | "function"
    name: str = ""  # for "function"

    @property
    def forced(self) -> bool:
        return self.mode in ("required", "function")


def validate_tool_request(tools: list[Tool], choice: ToolChoice, messages: list[Any]) -> None:
    """The structural checks (schemas are checked when their grammar is compiled)."""
    names = [t.name for t in tools]
    for i, tool in enumerate(tools):
        if not _NAME.fullmatch(tool.name):
            raise InvalidArgument(
                f"tools[{i}].function.name must be 1-64 letters, digits, _ or -, not {tool.name!r}",
                field=f"tools[{i}].function.name",
            )
    if len(set(names)) != len(names):
        raise InvalidArgument("tools: function names must be unique", field="tools")
    if choice.mode == "required" and not tools:
        raise InvalidArgument('tool_choice "required" needs tools', field="tool_choice")
    if choice.mode == "function" and choice.name not in names:
        declared = ", ".join(names) or "none"
        raise InvalidArgument(
            f"tool_choice names function {choice.name!r}, which is not in tools "
            f"(declared: {declared})",
            field="tool_choice",
        )
    for i, message in enumerate(messages):
        if message.role == "tool" and not message.tool_call_id:
            raise InvalidArgument(
                f"messages[{i}]: a tool message needs tool_call_id",
                field=f"messages[{i}].tool_call_id",
            )


_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")


def new_call_id() -> str:
    return f"call_{uuid.uuid4().hex[:24]}"


CALL_FORMAT = '{"name": "<tool name>", "arguments": {<arguments as JSON>}}'


def tools_prompt(tools: list[Tool]) -> str:
    """The system-prompt block for models whose chat template knows no tools."""
    lines = [
        "You can call these tools. To call one, answer with only a JSON object, exactly like",
        CALL_FORMAT,
        "(one object per call; several calls: one per line). Otherwise answer normally.",
        "Tools:",
    ]
    for tool in tools:
        lines.append(json.dumps(tool.openai()["function"], ensure_ascii=False))
    return "\n".join(lines)


# Wrappers model families put around calls (Llama 3.1, Mistral, Hermes/Qwen, functionary...):
# dropped from what is left once the calls inside are taken out.
_MARKERS = re.compile(
    r"<\|python_tag\|>|\[TOOL_CALLS\]|</?tool_call>|</?function_call>|<\|eom_id\|>|functools"
)
_FENCE = re.compile(r"```(?:json|tool_call|tool_code)?\s*(.*?)```", re.DOTALL)
_DECODER = json.JSONDecoder()


def _json_values(text: str) -> list[tuple[int, int, Any]]:
    """Every top-level JSON object or array in `text`, with its span."""
    found = []
    i = 0
    while i < len(text):
        if text[i] in "{[":
            try:
                value, end = _DECODER.raw_decode(text, i)
            except json.JSONDecodeError:
                i += 1
                continue
            found.append((i, end, value))
            i = end
        else:
            i += 1
    return found


def _as_call(value: Any, declared: set[str]) -> ToolCall | None:
    if not isinstance(value, dict):
        return None
    if isinstance(value.get("function"), dict):  # {"type": "function", "function": {...}}
        value = value["function"]
    name = value.get("name")
    if not isinstance(name, str) or name not in declared:
        return None
    arguments = value.get("arguments", value.get("parameters", {}))
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except json.JSONDecodeError:
            return None
    if not isinstance(arguments, dict):
        return None
    return ToolCall(new_call_id(), name, json.dumps(arguments, ensure_ascii=False))


def parse_tool_calls(text: str, tools: list[Tool]) -> tuple[str, list[ToolCall]]:
    """Split `text` into the content left over and the calls to declared tools it contains."""
    declared = {t.name for t in tools}
    source = _FENCE.sub(lambda m: m.group(1), text)  # fenced JSON counts as if unfenced
    calls: list[ToolCall] = []
    kept: list[str] = []
    last = 0
    for start, end, value in _json_values(source):
        items = value if isinstance(value, list) else [value]
        found = [c for c in (_as_call(v, declared) for v in items) if c is not None]
        if found and len(found) == len(items):
            calls += found
            kept.append(source[last:start])
            last = end
    if not calls:
        return text, []
    kept.append(source[last:])
    rest = _MARKERS.sub("", "".join(kept))
    rest = re.sub(r"^\s*(?:assistant|Assistant|ASSISTANT)\s*:\s*", "", rest).strip()
    return rest, calls


def call_from_model_parser(parsed: Any) -> list[ToolCall]:
    """mlx-lm's family parsers return a dict (or a list of them) with name and arguments."""
    items = parsed if isinstance(parsed, list) else [parsed]
    calls = []
    for item in items:
        if not isinstance(item, dict) or "name" not in item:
            continue
        arguments = item.get("arguments", {})
        if not isinstance(arguments, str):
            arguments = json.dumps(arguments, ensure_ascii=False)
        calls.append(ToolCall(new_call_id(), str(item["name"]), arguments))
    return calls
