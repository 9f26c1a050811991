"""Splitting a streamed reply into thinking and answer, wherever the chunks happen to break."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from osaurus.chat.reasoning import CONTENT, REASONING, ReasoningSplitter


def split(text: str, cuts: list[int]) -> list[str]:
    points = sorted({c % (len(text) + 1) for c in cuts} | {0, len(text)})
    return [text[a:b] for a, b in itertools.pairwise(points) if b > a]


def run(splitter: ReasoningSplitter, chunks: list[str]) -> tuple[str, str]:
    parts = [p for chunk in chunks for p in splitter.feed(chunk)] + splitter.flush()
    reasoning = "".join(text for kind, text in parts if kind == REASONING)
    content = "".join(text for kind, text in parts if kind == CONTENT)
    return reasoning, content


@given(st.lists(st.integers(min_value=0), max_size=10))
def test_thinking_then_answer(cuts) -> None:
    text = "<think>Paris is in France.</think>\n\nThe capital is Paris."
    reasoning, content = run(ReasoningSplitter("<think>", "</think>"), split(text, cuts))
    assert reasoning == "Paris is in France."
    assert content == "The capital is Paris."


@given(st.lists(st.integers(min_value=0), max_size=10))
def test_a_reply_that_starts_inside_the_thinking_block(cuts) -> None:
    text = "Hmm, 2 + 2.</think>4"
    splitter = ReasoningSplitter("<think>", "</think>", inside=True)
    assert run(splitter, split(text, cuts)) == ("Hmm, 2 + 2.", "4")


@given(st.lists(st.integers(min_value=0), max_size=10))
def test_text_with_no_markers_and_lookalikes_is_all_content(cuts) -> None:
    text = "Use <b>bold</b> and a < sign; <thin> is not a marker."
    assert run(ReasoningSplitter("<think>", "</think>"), split(text, cuts)) == ("", text)


def test_thinking_cut_short_stays_reasoning() -> None:
    splitter = ReasoningSplitter("<think>", "</think>")
    assert run(splitter, ["<think>Still thinking", " </thi"]) == ("Still thinking </thi", "")
