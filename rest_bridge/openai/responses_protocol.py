"""OpenAI Responses request shapes (pydantic): input as a string or items, function tools,
text.format, reasoning, previous_response_id. Strict about types, unknown fields ignored."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from rest_bridge.generation import ReasoningEffort
from rest_bridge.openai.protocol import JsonSchemaSpec, UInt32

_REQUEST_CONFIG = ConfigDict(extra="ignore", strict=True)


class ContentPart(BaseModel):
    model_config = _REQUEST_CONFIG
    type: Literal["input_text", "output_text", "text", "input_image", "input_file", "refusal"]
    text: str = ""


class MessageItem(BaseModel):
    model_config = _REQUEST_CONFIG
    type: Literal["message"] = "message"
    role: Literal["user", "system", "developer", "assistant"]
    content: str | list[ContentPart]


class FunctionCallItem(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)
    type: Literal["function_call"]
    call_id: str
    name: str
    arguments: str


class FunctionCallOutputItem(BaseModel):
    model_config = _REQUEST_CONFIG
    type: Literal["function_call_output"]
    call_id: str
    output: str


class ReasoningItem(BaseModel):
    """Earlier reasoning a client sends back: not shown to the model again."""

    model_config = ConfigDict(extra="ignore")
    type: Literal["reasoning"]


InputItem = MessageItem | FunctionCallItem | FunctionCallOutputItem | ReasoningItem


class FunctionTool(BaseModel):
    model_config = _REQUEST_CONFIG
    type: Literal["function"]
    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class NamedFunction(BaseModel):
    model_config = _REQUEST_CONFIG
    type: Literal["function"]
    name: str


class TextFormat(BaseModel):
    model_config = _REQUEST_CONFIG
    type: Literal["text", "json_object", "json_schema"]
    name: str | None = None
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    strict: bool | None = None
    description: str | None = None

    def json_schema(self) -> JsonSchemaSpec:
        return JsonSchemaSpec(name=self.name or "schema", schema=self.schema_ or {})


class TextConfig(BaseModel):
    model_config = _REQUEST_CONFIG
    format: TextFormat | None = None


class Reasoning(BaseModel):
    """How hard a reasoning model thinks; `summary` is accepted and ignored (the whole thought
    comes back as reasoning text)."""

    model_config = ConfigDict(extra="ignore")
    effort: ReasoningEffort | None = None


class ResponsesRequest(BaseModel):
    model_config = _REQUEST_CONFIG
    model: str
    input: str | list[InputItem]
    instructions: str | None = None
    tools: list[FunctionTool] | None = None
    tool_choice: Literal["auto", "none", "required"] | NamedFunction | None = None
    parallel_tool_calls: bool | None = None
    text: TextConfig | None = None
    reasoning: Reasoning | None = None
    max_output_tokens: UInt32 | None = None
    temperature: float | None = None
    top_p: float | None = None
    store: bool = True
    previous_response_id: str | None = None
    stream: bool = False
    metadata: dict[str, str] | None = None
    user: str | None = None
    truncation: Annotated[str, Field(pattern="^(disabled|auto)$")] | None = None
    # "message.output_text.logprobs" adds each token's logprob to the text; other values name
    # outputs osaurus does not make (file search results, encrypted reasoning) and are ignored.
    include: list[str] | None = None
    top_logprobs: UInt32 | None = None  # the server checks the range (0 to 20)

    def wants_logprobs(self) -> bool:
        return "message.output_text.logprobs" in (self.include or []) or (
            self.top_logprobs is not None
        )
