"""Chat messages as the core sees them: no proto, no pydantic."""

from __future__ import annotations

from dataclasses import dataclass

from osaurus.chat.tools import ToolCall

ROLES = ("system", "user", "assistant", "tool")


@dataclass(frozen=True)
class Message:
    role: str
    content: str
    name: str = ""
    tool_calls: tuple[ToolCall, ...] = ()  # an assistant message's calls
    tool_call_id: str = ""  # a tool message's call
