"""Streaming a reply that may hold tool calls: text out as content, calls out as call deltas.

The model may answer in text or call tools; with a forced `tool_choice`, constrained decoding
makes it write only calls, in the format below. Text streams as content until something that may
start a call appears (`{`, a code fence, the model's own tool-call marker). A call in the format
the prompt asks for (`{"name": ..., "arguments": {...}}`, one per line) streams as it is written:
a header delta (index, id, name) as soon as the name is complete, then argument fragments. Any
other shape (fenced, a list, string arguments, a family's own markers) is held and parsed when
the reply ends, and its calls go out as a header delta and an arguments delta each; what is not a
call goes out as content.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mlx_lm.generate import TextStateMachine

from osaurus.chat.tools import Tool, call_from_model_parser, new_call_id, parse_tool_calls


@dataclass(frozen=True)
class CallDelta:
    index: int
    id: str = ""
    name: str = ""
    arguments: str = ""


Piece = str | CallDelta  # content text, or a piece of a tool call


class AutoCallStream:
    def __init__(
        self,
        tools: list[Tool],
        model_marker: str | None = None,
        model_parser: Callable[[str, Any], Any] | None = None,
        model_marker_end: str | None = None,
    ):
        self.tools = tools
        # mlx-lm's TextStateMachine spots the triggers, holding back text that may begin one;
        # each trigger is the name of the state it leads to.
        triggers = ["{", "```"] + ([model_marker] if model_marker else [])
        transitions = {"text": [(t, t) for t in triggers], **{t: [] for t in triggers}}
        self._triggers = TextStateMachine(transitions)
        self._scan = self._triggers.make_state("text")
        self._marker, self._marker_end, self._parser = model_marker, model_marker_end, model_parser
        self._declared = {t.name for t in tools}
        self._held = ""  # text not yet sent: a possible trigger, a held call, arguments...
        self._state = "text"  # text | held | arguments | closing
        self._after_call = False
        self._scanner = _ObjectScanner()
        self.calls = 0

    def feed(self, text: str) -> list[Piece]:
        out: list[Piece] = []
        self._held += text
        while self._held:
            before = (self._state, len(self._held))
            out += getattr(self, f"_on_{self._state}")()
            if (self._state, len(self._held)) == before:
                break  # waiting for more text
        return out

    def _on_text(self) -> list[Piece]:
        text, self._held = self._held, ""
        if self._after_call:  # the whitespace between calls is not content
            text = text.lstrip()
            self._after_call = not text
        self._scan, segments = TextStateMachine.split(self._scan, text)
        sent = segments[0][1]
        if len(segments) > 1:  # a trigger: it and what follows wait for the call reader
            trigger, rest = segments[1]
            self._state, self._held = "held", trigger + rest
            self._scan = self._triggers.make_state("text")
        return [sent] if sent else []

    def _on_held(self) -> list[Piece]:
        """A call in the format we ask for streams as it is written; anything else waits for
        the end of the reply and the full parser."""
        match = _AUTO_HEAD.match(self._held)
        if match is None or match.group(1) not in self._declared:
            return []
        self._state, self._held = "arguments", self._held[match.end() :]
        self._scanner = _ObjectScanner()
        return [CallDelta(self.calls, new_call_id(), match.group(1))]

    def _on_arguments(self) -> list[Piece]:
        end = self._scanner.feed(self._held)
        fragment = self._held if end is None else self._held[:end]
        self._held = "" if end is None else self._held[end:]
        out: list[Piece] = [CallDelta(self.calls, arguments=fragment)] if fragment else []
        if end is not None:
            self._state = "closing"
        return out

    def _on_closing(self) -> list[Piece]:
        rest = self._held.lstrip()
        if not rest:
            return []
        self._held = rest[1:] if rest.startswith("}") else rest  # the wrapper's closing brace
        self.calls += 1
        self._state, self._after_call = "text", True
        return []

    def finish(self) -> list[Piece]:
        held, self._held = self._held, ""
        state, self._state = self._state, "text"
        if state in ("arguments", "closing"):  # cut short (max_tokens) or ended after a call
            self.calls += 1
            return []
        if state == "text":  # what the trigger scanner still holds is text after all
            self._scan, held, _ = TextStateMachine.flush(self._scan)
            return [held] if held and not (self._after_call and not held.strip()) else []
        rest, calls = self._parse(held)
        out: list[Piece] = [rest] if rest else []
        for call in calls:
            out.append(CallDelta(self.calls, call.id, call.name))
            out.append(CallDelta(self.calls, arguments=call.arguments))
            self.calls += 1
        return out

    def _parse(self, text: str):
        if self._marker and self._parser and self._marker in text:
            calls, rest = [], text
            pattern = (
                re.escape(self._marker)
                + r"(.*?)"
                + (re.escape(self._marker_end) if self._marker_end else r"$")
            )
            for match in re.finditer(pattern, text, re.DOTALL):
                try:
                    parsed = self._parser(match.group(1), [t.openai() for t in self.tools])
                except Exception:  # a family parser raises on text it cannot read: keep it
                    continue
                calls += call_from_model_parser(parsed)
                rest = rest.replace(match.group(0), "")
            declared = {t.name for t in self.tools}
            if calls and all(c.name in declared for c in calls):
                return rest.strip(), calls
        return parse_tool_calls(text, self.tools)


_AUTO_HEAD = re.compile(r'^\{\s*"name"\s*:\s*"([^"\\]*)"\s*,\s*"arguments"\s*:\s*(?=\{)')


class _ObjectScanner:
    """Finds where a JSON object ends in text that arrives in pieces (strings and escapes
    respected), so its characters can be sent on as they come."""

    def __init__(self) -> None:
        self.depth = 0
        self.in_string = False
        self.escaped = False

    def feed(self, text: str) -> int | None:
        """Offset just past the object's closing brace in `text`, or None if it goes on."""
        for i, ch in enumerate(text):
            if self.in_string:
                if self.escaped:
                    self.escaped = False
                elif ch == "\\":
                    self.escaped = True
                elif ch == '"':
                    self.in_string = False
            elif ch == '"':
                self.in_string = True
            elif ch in "{[":
                self.depth += 1
            elif ch in "}]":
                self.depth -= 1
                if self.depth == 0:
                    return i + 1
        return None
