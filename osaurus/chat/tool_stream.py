"""Streaming a reply that may hold tool calls: text out as content, calls out as call deltas.

Two cases:
- Forced (`tool_choice` required or a named function): constrained decoding makes the reply
  exactly `{"name": "NAME", "arguments": ARGS}`. So the call's header (index, id, name) goes out as
  soon as the name is complete, and the arguments go out fragment by fragment as they are
  generated; only the wrapper's closing brace is held back.
- Auto: the model may answer in text or call tools. Text streams as content until something that
  may start a call appears (`{`, a code fence, the model's own tool-call marker); from there the
  reply is held and parsed at the end. Calls found go out as a header delta then an arguments
  delta each; anything else goes out as content.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from osaurus.chat.tools import Tool, call_from_model_parser, new_call_id, parse_tool_calls


@dataclass(frozen=True)
class CallDelta:
    index: int
    id: str = ""
    name: str = ""
    arguments: str = ""


Piece = str | CallDelta  # content text, or a piece of a tool call

_FORCED_HEADER = re.compile(r'^\{"name": "((?:[^"\\]|\\.)*)", "arguments": ')


class ForcedCallStream:
    def __init__(self) -> None:
        self._buffer = ""
        self._sent = 0  # characters of the buffer already sent as arguments
        self._started = False
        self.calls = 0

    def feed(self, text: str) -> list[Piece]:
        self._buffer += text
        out: list[Piece] = []
        if not self._started:
            match = _FORCED_HEADER.match(self._buffer)
            if match is None:
                return out
            self._started = True
            self.calls = 1
            self._buffer = self._buffer[match.end() :]
            out.append(CallDelta(0, new_call_id(), match.group(1)))
        end = len(self._buffer) - 1  # the last character may be the wrapper's closing brace
        if end > self._sent:
            out.append(CallDelta(0, arguments=self._buffer[self._sent : end]))
            self._sent = end
        return out

    def finish(self) -> list[Piece]:
        if not self._started:  # cut short before the name was complete (max_tokens)
            return []
        rest = self._buffer[self._sent :]
        if rest.endswith("}"):
            rest = rest[:-1]
        return [CallDelta(0, arguments=rest)] if rest else []


class AutoCallStream:
    def __init__(
        self,
        tools: list[Tool],
        model_marker: str | None = None,
        model_parser: Callable[[str, Any], Any] | None = None,
        model_marker_end: str | None = None,
    ):
        self.tools = tools
        self._triggers = ["{", "```"] + ([model_marker] if model_marker else [])
        self._marker, self._marker_end, self._parser = model_marker, model_marker_end, model_parser
        self._held = ""  # text that may be the start of a trigger, or everything after one
        self._holding = False
        self.calls = 0

    def feed(self, text: str) -> list[Piece]:
        if self._holding:
            self._held += text
            return []
        text = self._held + text
        self._held = ""
        starts = [i for i in (text.find(t) for t in self._triggers) if i >= 0]
        if starts:
            cut = min(starts)
            self._holding = True
            self._held = text[cut:]
            return [text[:cut]] if cut else []
        keep = _partial_trigger_suffix(text, self._triggers)
        self._held = text[len(text) - keep :] if keep else ""
        sent = text[: len(text) - keep]
        return [sent] if sent else []

    def finish(self) -> list[Piece]:
        held, self._held = self._held, ""
        if not held:
            return []
        rest, calls = self._parse(held)
        out: list[Piece] = [rest] if rest else []
        for index, call in enumerate(calls):
            out.append(CallDelta(index, call.id, call.name))
            out.append(CallDelta(index, arguments=call.arguments))
        self.calls = len(calls)
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


def _partial_trigger_suffix(text: str, triggers: list[str]) -> int:
    """Length of the longest end of `text` that could begin a trigger (held back, not sent)."""
    best = 0
    for trigger in triggers:
        for n in range(min(len(trigger) - 1, len(text)), 0, -1):
            if trigger.startswith(text[-n:]):
                best = max(best, n)
                break
    return best
