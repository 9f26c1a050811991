"""Anthropic Messages request shapes (pydantic), as the API reference has them.

Strict about types, unknown fields ignored. Checked here is what Anthropic's API adds to the
contract: max_tokens is required, temperature is in [0, 1], content blocks and tool_choice
have Anthropic's shapes. The contract's own ranges are the server's to check.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

_REQUEST_CONFIG = ConfigDict(extra="ignore", strict=True)
UInt32 = Annotated[int, Field(ge=1, le=2**32 - 1)]


class TextBlock(BaseModel):
    model_config = _REQUEST_CONFIG
    type: Literal["text"]
    text: str


class ImageBlock(BaseModel):
    model_config = _REQUEST_CONFIG
    type: Literal["image", "document"]


class ToolUseBlock(BaseModel):
    model_config = _REQUEST_CONFIG
    type: Literal["tool_use"]
    id: str
    name: str
    input: dict[str, Any] = Field(default_factory=dict)


class ToolResultBlock(BaseModel):
    model_config = _REQUEST_CONFIG
    type: Literal["tool_result"]
    tool_use_id: str
    content: str | list[TextBlock | ImageBlock] = ""
    is_error: bool = False


class ThinkingBlock(BaseModel):
    """Earlier thinking an assistant turn carries: not sent back to the model."""

    model_config = ConfigDict(extra="ignore")
    type: Literal["thinking", "redacted_thinking"]


Block = Annotated[
    TextBlock | ImageBlock | ToolUseBlock | ToolResultBlock | ThinkingBlock,
    Field(discriminator="type"),
]


class Message(BaseModel):
    model_config = _REQUEST_CONFIG
    role: Literal["user", "assistant"]
    content: str | list[Block]


class Tool(BaseModel):
    model_config = _REQUEST_CONFIG
    name: str
    description: str | None = None
    input_schema: dict[str, Any]


class ToolChoice(BaseModel):
    model_config = _REQUEST_CONFIG
    type: Literal["auto", "any", "tool", "none"]
    name: str | None = None
    disable_parallel_tool_use: bool | None = None


class Thinking(BaseModel):
    model_config = _REQUEST_CONFIG
    type: Literal["enabled", "disabled"]
    budget_tokens: int | None = None


class CountTokensRequest(BaseModel):
    model_config = _REQUEST_CONFIG
    model: str
    messages: list[Message]
    system: str | list[TextBlock] | None = None
    tools: list[Tool] | None = None


class MessagesRequest(CountTokensRequest):
    max_tokens: UInt32
    stop_sequences: list[str] | None = None
    temperature: Annotated[float, Field(ge=0, le=1)] | None = None
    top_p: float | None = None
    top_k: Annotated[int, Field(ge=0, le=2**31 - 1)] | None = None
    stream: bool = False
    tool_choice: ToolChoice | None = None
    thinking: Thinking | None = None
    metadata: dict[str, Any] | None = None
