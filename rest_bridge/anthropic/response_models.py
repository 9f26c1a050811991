"""What the Anthropic routes answer, as pydantic models, for /openapi.json only (see
rest_bridge/openapi.py; tests/rest_bridge/test_openapi.py checks real answers against them).
Names start with Anthropic: the components are shared with the other families."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

StopReason = Literal["end_turn", "max_tokens", "stop_sequence", "tool_use"]


class AnthropicTextBlock(BaseModel):
    type: Literal["text"]
    text: str


class AnthropicThinkingBlock(BaseModel):
    type: Literal["thinking"]
    thinking: str
    signature: str


class AnthropicToolUseBlock(BaseModel):
    type: Literal["tool_use"]
    id: str
    name: str
    input: dict[str, Any]


AnthropicContentBlock = AnthropicTextBlock | AnthropicThinkingBlock | AnthropicToolUseBlock


class AnthropicUsage(BaseModel):
    input_tokens: int | None = Field(
        default=None, description="Prompt tokens prefilled (those not read from a cache)."
    )
    cache_read_input_tokens: int | None = None
    output_tokens: int


class AnthropicMessageResponse(BaseModel):
    id: str
    type: Literal["message"]
    role: Literal["assistant"]
    model: str
    content: list[AnthropicContentBlock]
    stop_reason: StopReason | None
    stop_sequence: str | None
    usage: AnthropicUsage


class AnthropicDelta(BaseModel):
    """content_block_delta's text_delta, thinking_delta or input_json_delta, or
    message_delta's stop_reason and stop_sequence."""

    type: Literal["text_delta", "thinking_delta", "input_json_delta"] | None = None
    text: str | None = None
    thinking: str | None = None
    partial_json: str | None = None
    stop_reason: StopReason | None = None
    stop_sequence: str | None = None


class AnthropicErrorDetail(BaseModel):
    type: str
    message: str


class AnthropicStreamEvent(BaseModel):
    """One server-sent event of a streamed message (`event:` names its type): message_start,
    ping, content_block_start / _delta / _stop, message_delta, message_stop, or error. Which of
    the other fields it has depends on the type, as in Anthropic's API reference."""

    type: Literal[
        "message_start",
        "ping",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
        "error",
    ]
    message: AnthropicMessageResponse | None = None
    index: int | None = None
    content_block: AnthropicContentBlock | None = None
    delta: AnthropicDelta | None = None
    usage: AnthropicUsage | None = None
    error: AnthropicErrorDetail | None = None


class AnthropicTokenCount(BaseModel):
    input_tokens: int


class AnthropicError(BaseModel):
    type: Literal["error"]
    error: AnthropicErrorDetail
