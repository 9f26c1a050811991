"""Reasoning models think between markers (`<think>` … `</think>`, or the template's own) before
they answer. The thinking goes to clients apart from the answer (`reasoning_content` on REST, a
reasoning delta on gRPC), and the markers themselves never reach them.

mlx-lm's tokenizer wrapper knows a model's markers (`has_thinking`, `think_start`, `think_end`).
Templates that open the thinking block themselves (the generation prompt ends with the start
marker) make the reply begin inside it.
"""

from __future__ import annotations

from mlx_lm.generate import TextStateMachine

REASONING = "reasoning"
CONTENT = "content"


class ReasoningSplitter:
    """mlx-lm's TextStateMachine matches the markers (held back while they may be partial) and
    strips them; this adds only dropping the whitespace between the end marker and the answer."""

    def __init__(self, start: str, end: str, inside: bool = False):
        machine = TextStateMachine({CONTENT: [(start, REASONING)], REASONING: [(end, CONTENT)]})
        self._state = machine.make_state(REASONING if inside else CONTENT)
        self._last = REASONING if inside else CONTENT
        self._after_end = False

    def feed(self, text: str) -> list[tuple[str, str]]:
        self._state, segments = TextStateMachine.split(self._state, text)
        return self._pieces(segments)

    def flush(self) -> list[tuple[str, str]]:
        self._state, text, name = TextStateMachine.flush(self._state)
        return self._pieces([(name, text)])

    def _pieces(self, segments: list[tuple[str, str]]) -> list[tuple[str, str]]:
        out = []
        for name, text in segments:
            if name == CONTENT and self._last == REASONING:
                self._after_end = True
            self._last = name
            if self._after_end and name == CONTENT:
                text = text.lstrip()
                self._after_end = not text
            if text:
                out.append((name, text))
        return out
