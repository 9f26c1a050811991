"""Finding tool calls in what models write, however they format them."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from osaurus.chat.messages import Message
from osaurus.chat.tools import Tool, ToolChoice, parse_tool_calls, validate_tool_request
from osaurus.errors import InvalidArgument

TOOLS = [Tool("get_weather"), Tool("get_time"), Tool("search-web")]
WEATHER = {"city": "Paris", "unit": "celsius"}

# (model output, expected calls as (name, arguments), expected leftover content)
CORPUS = [
    (
        '{"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}}',
        [("get_weather", WEATHER)],
        "",
    ),
    (
        '```json\n{"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}}\n```',
        [("get_weather", WEATHER)],
        "",
    ),
    ('```\n{"name":"get_time","arguments":{}}\n```', [("get_time", {})], ""),
    (
        'assistant: {"name": "get_time", "arguments": {"tz": "UTC"}}',
        [("get_time", {"tz": "UTC"})],
        "",
    ),
    (
        json.dumps({"name": "get_weather", "arguments": json.dumps(WEATHER)}),
        [("get_weather", WEATHER)],
        "",
    ),  # arguments as a JSON string
    (
        '{"name": "get_weather", "parameters": {"city": "Paris", "unit": "celsius"}}',
        [("get_weather", WEATHER)],
        "",
    ),  # "parameters" in place of "arguments"
    (
        '{"type": "function", "function": {"name": "get_time", "arguments": {}}}',
        [("get_time", {})],
        "",
    ),
    (
        '[{"name": "get_time", "arguments": {}}, '
        '{"name": "search-web", "arguments": {"q": "mlx"}}]',
        [("get_time", {}), ("search-web", {"q": "mlx"})],
        "",
    ),
    (
        '{"name": "get_time", "arguments": {}}\n'
        '{"name": "get_weather", "arguments": {"city": "Oslo"}}',
        [("get_time", {}), ("get_weather", {"city": "Oslo"})],
        "",
    ),
    ('Let me check.\n{"name": "get_time", "arguments": {}}', [("get_time", {})], "Let me check."),
    ('{ "name" : "get_time" ,\n   "arguments" : { } }', [("get_time", {})], ""),  # loose spacing
]
# What model families write when they call (formats from their chat templates and docs).
FAMILIES = [
    # Llama 3.1 / 3.2 (JSON-based tool calling, optional python tag)
    '<|python_tag|>{"name": "get_weather", "parameters": {"city": "Paris", "unit": "celsius"}}',
    '{"type": "function", "name": "get_weather", "parameters": {"city": "Paris", '
    '"unit": "celsius"}}',
    # Mistral / Mixtral
    '[TOOL_CALLS] [{"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}}]',
    # Hermes 2 Pro / Qwen 2.5 / Qwen 3
    '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}}\n'
    "</tool_call>",
    # Functionary-style and generic chat models
    'functools[{"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}}]',
    '<function_call>{"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}}'
    "</function_call>",
    'Sure! Here is the call:\n```json\n{\n  "name": "get_weather",\n  "arguments": {\n'
    '    "city": "Paris",\n    "unit": "celsius"\n  }\n}\n```',
]


@pytest.mark.parametrize("text", FAMILIES)
def test_family_formats_leave_no_markers_behind(text) -> None:
    rest, found = parse_tool_calls(text, TOOLS)
    assert [(c.name, json.loads(c.arguments)) for c in found] == [("get_weather", WEATHER)]
    assert rest in ("", "Sure! Here is the call:")


NOT_CALLS = [
    "The capital of France is Paris.",
    '{"name": "delete_everything", "arguments": {}}',  # not a declared tool: stays text
    '{"name": "get_time", "arguments": ["not", "an", "object"]}',
    '{"name": "get_time", "arguments": "{broken json"}',
    '{"city": "Paris"}',
    '{"name": "get_time", "arguments": {}',  # cut short
    "Use {curly braces} for sets.",
]


@pytest.mark.parametrize(("text", "calls", "content"), CORPUS)
def test_calls_are_found_in_every_format(text, calls, content) -> None:
    rest, found = parse_tool_calls(text, TOOLS)
    assert [(c.name, json.loads(c.arguments)) for c in found] == calls
    assert rest == content
    assert all(c.id.startswith("call_") for c in found)
    assert len({c.id for c in found}) == len(found)


@pytest.mark.parametrize("text", NOT_CALLS)
def test_anything_else_stays_text(text) -> None:
    assert parse_tool_calls(text, TOOLS) == (text, [])


json_scalars = st.one_of(st.integers(), st.text(max_size=8), st.booleans(), st.none())
arguments = st.dictionaries(st.text(min_size=1, max_size=8), json_scalars, max_size=4)


@given(
    name=st.sampled_from([t.name for t in TOOLS]),
    args=arguments,
    wrap=st.sampled_from(["{}", "```json\n{}\n```", "Sure.\n{}", "assistant: {}", "[{}]"]),
    indent=st.sampled_from([None, 2]),
)
def test_any_call_round_trips_through_any_wrapper(name, args, wrap, indent) -> None:
    call = json.dumps({"name": name, "arguments": args}, indent=indent)
    _, found = parse_tool_calls(wrap.replace("{}", call, 1), TOOLS)
    assert [(c.name, json.loads(c.arguments)) for c in found] == [(name, args)]


def test_bad_tool_requests_name_the_field() -> None:
    cases = [
        ([Tool("bad name!")], ToolChoice(), [], "tools[0].function.name"),
        ([Tool("a"), Tool("a")], ToolChoice(), [], "tools"),
        ([], ToolChoice("required"), [], "tool_choice"),
        ([Tool("a")], ToolChoice("function", "b"), [], "tool_choice"),
        ([Tool("a")], ToolChoice(), [Message("tool", "42")], "messages[0].tool_call_id"),
    ]
    for tools, choice, messages, field in cases:
        with pytest.raises(InvalidArgument) as info:
            validate_tool_request(tools, choice, messages)
        assert info.value.field == field
