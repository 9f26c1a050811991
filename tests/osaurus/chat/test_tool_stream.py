"""Streaming replies that hold tool calls: headers first, arguments as they come, no leaks."""

from __future__ import annotations

import itertools
import json

from hypothesis import given
from hypothesis import strategies as st

from osaurus.chat.tool_stream import AutoCallStream, CallDelta
from osaurus.chat.tools import Tool

ARGS = {"city": "Paris", "unit": "celsius", "note": 'a "quoted" }'}
FORCED = json.dumps({"name": "get_weather", "arguments": ARGS})  # what a forced choice writes
TOOLS = [Tool("get_weather")]


def split(text: str, cuts: list[int]) -> list[str]:
    points = sorted({c % (len(text) + 1) for c in cuts} | {0, len(text)})
    return [text[a:b] for a, b in itertools.pairwise(points) if b > a]


def run(stream, chunks: list[str]) -> list:
    pieces = []
    for chunk in chunks:
        pieces += stream.feed(chunk)
    return pieces + stream.finish()


@given(st.lists(st.integers(min_value=0), max_size=12))
def test_a_call_streams_header_then_argument_fragments(cuts) -> None:
    pieces = run(AutoCallStream(TOOLS), split(FORCED, cuts))
    assert all(isinstance(p, CallDelta) for p in pieces)
    header, *rest = pieces
    assert header.id.startswith("call_") and header.name == "get_weather"
    assert all(not p.id and not p.name for p in rest)
    assert json.loads("".join(p.arguments for p in rest)) == ARGS


def test_arguments_flow_before_the_call_is_complete() -> None:
    stream = AutoCallStream(TOOLS)
    early = stream.feed(FORCED[: FORCED.index("Paris")])
    assert [p.name for p in early if p.name] == ["get_weather"]
    assert "city" in "".join(p.arguments for p in early)


@given(st.lists(st.integers(min_value=0), max_size=12))
def test_auto_text_streams_and_a_trailing_call_is_parsed(cuts) -> None:
    text = "Let me look that up. " + json.dumps({"name": "get_weather", "arguments": ARGS})
    stream = AutoCallStream(TOOLS)
    pieces = run(stream, split(text, cuts))
    content = "".join(p for p in pieces if isinstance(p, str))
    calls = [p for p in pieces if isinstance(p, CallDelta)]
    assert content.strip() == "Let me look that up."
    assert calls[0].name == "get_weather" and calls[0].id.startswith("call_")
    assert json.loads("".join(p.arguments for p in calls[1:])) == ARGS
    assert stream.calls == 1


def test_an_auto_call_in_the_asked_format_streams_as_it_is_written() -> None:
    call = json.dumps({"name": "get_weather", "arguments": ARGS})
    stream = AutoCallStream(TOOLS)
    early = stream.feed("On it.\n" + call[: call.index("celsius")])
    assert early[0] == "On it.\n"
    assert early[1].name == "get_weather"
    assert "city" in "".join(p.arguments for p in early[2:])


@given(st.lists(st.integers(min_value=0), max_size=16))
def test_several_auto_calls_one_per_line(cuts) -> None:
    first = json.dumps({"name": "get_weather", "arguments": ARGS})
    second = json.dumps({"name": "get_weather", "arguments": {"city": "Oslo"}})
    stream = AutoCallStream(TOOLS)
    pieces = run(stream, split(f"{first}\n{second}\n", cuts))
    assert not [p for p in pieces if isinstance(p, str)]  # no stray content
    by_call: dict[int, list[CallDelta]] = {}
    for p in pieces:
        by_call.setdefault(p.index, []).append(p)
    assert sorted(by_call) == [0, 1] and stream.calls == 2
    args = [json.loads("".join(p.arguments for p in by_call[i])) for i in (0, 1)]
    assert args == [ARGS, {"city": "Oslo"}]
    assert len({by_call[i][0].id for i in (0, 1)}) == 2


@given(st.lists(st.integers(min_value=0), max_size=12))
def test_auto_plain_text_passes_through_whole(cuts) -> None:
    text = "No tools needed: the answer is 4 (see `math`)."
    pieces = run(AutoCallStream(TOOLS), split(text, cuts))
    assert "".join(pieces) == text


def test_auto_text_that_only_looks_like_a_call_is_returned_as_text() -> None:
    text = 'Here is some JSON: {"a": 1} and more.'
    stream = AutoCallStream(TOOLS)
    assert "".join(run(stream, [text])) == text
    assert stream.calls == 0


def test_a_model_family_parser_is_used_between_its_markers() -> None:
    from mlx_lm.tool_parsers import json_tools  # Hermes / Qwen's <tool_call> format

    body = json.dumps({"name": "get_weather", "arguments": ARGS})
    stream = AutoCallStream(
        TOOLS, json_tools.tool_call_start, json_tools.parse_tool_call, json_tools.tool_call_end
    )
    pieces = run(stream, ["Checking.", f"<tool_call>\n{body}\n</tool_call>"])
    assert pieces[0] == "Checking."
    assert pieces[1].name == "get_weather" and json.loads(pieces[2].arguments) == ARGS
