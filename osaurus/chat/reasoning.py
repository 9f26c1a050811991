"""Reasoning models think between markers (`<think>` … `</think>`, or the template's own) before
they answer. The thinking goes to clients apart from the answer (`reasoning_content` on REST, a
reasoning delta on gRPC), and the markers themselves never reach them.

mlx-lm's tokenizer wrapper knows a model's markers (`has_thinking`, `think_start`, `think_end`).
Templates that open the thinking block themselves (the generation prompt ends with the start
marker) make the reply begin inside it.
"""

from __future__ import annotations

from collections.abc import Iterator

REASONING = "reasoning"
CONTENT = "content"


class ReasoningSplitter:
    def __init__(self, start: str, end: str, inside: bool = False):
        self.start, self.end = start, end
        self.inside = inside
        self._held = ""  # text that may be the beginning of a marker
        self._after_end = False  # drop the whitespace between the end marker and the answer

    def feed(self, text: str) -> list[tuple[str, str]]:
        return list(self._split(self._held + text, final=False))

    def flush(self) -> list[tuple[str, str]]:
        return list(self._split(self._held, final=True))

    def _split(self, text: str, final: bool) -> Iterator[tuple[str, str]]:
        self._held = ""
        while text:
            marker = self.end if self.inside else self.start
            at = text.find(marker)
            if at < 0:
                keep = 0 if final else _partial_suffix(text, marker)
                piece, self._held = text[: len(text) - keep], text[len(text) - keep :]
                yield from self._emit(piece)
                return
            yield from self._emit(text[:at])
            text = text[at + len(marker) :]
            self._after_end = self.inside
            self.inside = not self.inside

    def _emit(self, piece: str) -> Iterator[tuple[str, str]]:
        if self._after_end and not self.inside:
            piece = piece.lstrip()
            if piece:
                self._after_end = False
        if piece:
            yield (REASONING if self.inside else CONTENT, piece)


def _partial_suffix(text: str, marker: str) -> int:
    for n in range(min(len(marker) - 1, len(text)), 0, -1):
        if marker.startswith(text[-n:]):
            return n
    return 0
