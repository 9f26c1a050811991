"""OpenAI chat-completions request shapes (pydantic).

Requests are strict about types (a string where a number belongs is a 400, as on OpenAI) and
ignore unknown fields, as OpenAI-compatible servers do. Sampling extensions that mlx_lm.server
and vLLM also accept (top_k, min_p, repetition_penalty) are taken as top-level fields.

Values the contract defines (sampling ranges, max_tokens >= 1, stop strings, a model and at least
one message) are checked by the server, once for every client; the errors come back naming the
field, which the bridge reports as OpenAI's `param`. Checked here is only what OpenAI's API adds
(n, stream_options, response_format, keep_alive's syntax) and what the wire can carry.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, cast

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from osaurus.v1 import inference_pb2 as pb
from rest_bridge.fields import KeepAlive
from rest_bridge.generation import ReasoningEffort, sampling

_REQUEST_CONFIG = ConfigDict(extra="ignore", strict=True)
# What the contract's integer fields can carry (the server checks the meaningful range).
UInt32 = Annotated[int, Field(ge=0, le=2**32 - 1)]
Int32 = Annotated[int, Field(ge=-(2**31), le=2**31 - 1)]


class TextPart(BaseModel):
    model_config = _REQUEST_CONFIG
    type: Literal["text"]
    text: str


class FunctionCall(BaseModel):
    model_config = _REQUEST_CONFIG
    name: str
    arguments: str  # JSON text, as OpenAI sends it


class ToolCall(BaseModel):
    model_config = _REQUEST_CONFIG
    id: str
    type: Literal["function"] = "function"
    function: FunctionCall


class ChatMessage(BaseModel):
    model_config = _REQUEST_CONFIG
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[TextPart] | None = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = None  # assistant
    tool_call_id: str | None = None  # tool

    def text(self) -> str:
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text for part in self.content)


class FunctionDefinition(BaseModel):
    model_config = _REQUEST_CONFIG
    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class FunctionTool(BaseModel):
    model_config = _REQUEST_CONFIG
    type: Literal["function"]
    function: FunctionDefinition


class NamedFunction(BaseModel):
    model_config = _REQUEST_CONFIG
    name: str


class NamedToolChoice(BaseModel):
    model_config = _REQUEST_CONFIG
    type: Literal["function"]
    function: NamedFunction


class StreamOptions(BaseModel):
    model_config = _REQUEST_CONFIG
    include_usage: bool = False


class JsonSchemaSpec(BaseModel):
    model_config = _REQUEST_CONFIG
    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    description: str | None = None
    schema_: dict[str, Any] = Field(default_factory=dict, alias="schema")
    strict: bool | None = None


class ResponseFormat(BaseModel):
    model_config = _REQUEST_CONFIG
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaSpec | None = None

    @model_validator(mode="after")
    def _schema_for_json_schema(self) -> ResponseFormat:
        if self.type == "json_schema" and self.json_schema is None:
            raise ValueError("json_schema is required when type is json_schema")
        return self


class _GenerationRequest(BaseModel):
    """What chat completions and completions share: the model, sampling (with the extensions
    mlx_lm.server and vLLM take: top_k, min_p, repetition_penalty), stops, one choice, streaming."""

    model_config = _REQUEST_CONFIG

    model: str
    temperature: float | None = None
    top_p: float | None = None
    top_k: Int32 | None = None
    min_p: float | None = None
    repetition_penalty: float | None = None
    stop: str | list[str] | None = None
    seed: int | None = None
    n: int | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    user: str | None = None

    @field_validator("n")
    @classmethod
    def _only_one_choice(cls, n: int | None) -> int | None:
        if n is not None and n != 1:
            raise ValueError("only n=1 is supported")
        return n

    @field_validator("stream_options")
    @classmethod
    def _stream_options_need_stream(
        cls, options: StreamOptions | None, info: ValidationInfo
    ) -> StreamOptions | None:
        if options is not None and not info.data.get("stream"):
            raise ValueError("stream_options is only allowed when stream is true")
        return options

    def stop_list(self) -> list[str]:
        if self.stop is None:
            return []
        return [self.stop] if isinstance(self.stop, str) else list(self.stop)

    def sampling(self) -> pb.SamplingParams:
        return sampling(
            self.temperature, self.top_p, self.top_k, self.min_p, self.repetition_penalty, self.seed
        )

    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)


class ChatCompletionRequest(_GenerationRequest):
    messages: list[ChatMessage]
    max_tokens: UInt32 | None = None
    max_completion_tokens: UInt32 | None = None
    response_format: ResponseFormat | None = None
    tools: list[FunctionTool] | None = None
    tool_choice: Literal["auto", "none", "required"] | NamedToolChoice | None = None
    parallel_tool_calls: bool | None = None
    # Ollama's keep_alive: how long the model stays loaded once idle ("5m", 300, -1 forever).
    keep_alive: KeepAlive | None = None
    # osaurus extension: keep this conversation's KV cache between requests.
    session_id: str | None = None
    # vLLM's and llama.cpp's extension: generate past end-of-turn tokens, up to max_tokens.
    ignore_eos: bool = False
    # osaurus extension: prompt-lookup speculative decoding (greedy requests decoding alone).
    speculative: bool | None = None
    logprobs: bool = False
    top_logprobs: UInt32 | None = None  # the server checks the range (0 to 20)
    reasoning_effort: ReasoningEffort | None = None

    @field_validator("top_logprobs")
    @classmethod
    def _top_logprobs_need_logprobs(cls, value: int | None, info: ValidationInfo) -> int | None:
        if value is not None and not info.data.get("logprobs"):
            raise ValueError("top_logprobs needs logprobs to be true")
        return value


TokenId = Annotated[int, Field(ge=0, le=2**32 - 1)]


class CompletionRequest(_GenerationRequest):
    """POST /v1/completions: a raw prompt (text, texts, token ids, or lists of them)."""

    prompt: str | list[str] | list[TokenId] | list[list[TokenId]]
    max_tokens: UInt32 | None = 16  # OpenAI's default for this endpoint
    best_of: int | None = None
    logprobs: Annotated[int, Field(ge=0, le=5)] | None = None  # OpenAI's limit here
    echo: bool = False
    suffix: str | None = None

    # Field validators, so that the error names its field as OpenAI's `param`.
    @field_validator("prompt")
    @classmethod
    def _prompt_not_empty(cls, prompt: Any) -> Any:
        if prompt in ("", []) or (isinstance(prompt, list) and [] in prompt):
            raise ValueError("prompt must not be empty")
        return prompt

    @field_validator("best_of")
    @classmethod
    def _one_candidate(cls, best_of: int | None) -> int | None:
        if best_of not in (None, 1):
            raise ValueError("best_of is not supported (only 1)")
        return best_of

    @field_validator("echo")
    @classmethod
    def _echo_without_logprobs(cls, echo: bool, info: ValidationInfo) -> bool:
        if echo and info.data.get("logprobs") is not None:
            raise ValueError("echo with logprobs is not supported: prompt tokens carry none")
        return echo

    @field_validator("suffix")
    @classmethod
    def _no_suffix(cls, suffix: str | None) -> str | None:
        if suffix:
            raise ValueError("suffix (fill-in-the-middle) is not supported")
        return suffix

    def prompts(self) -> list[str | list[int]]:
        """One prompt per choice: a text, or a list of token ids."""
        p = self.prompt
        if isinstance(p, str):
            return [p]
        if all(isinstance(x, int) for x in p):
            return [cast(list[int], p)]  # one prompt of token ids
        return list(cast(list[str | list[int]], p))


class EmbeddingRequest(BaseModel):
    """POST /v1/embeddings: `input` is a text, texts, token ids, or lists of token ids."""

    model_config = _REQUEST_CONFIG
    model: str
    input: str | list[str] | list[TokenId] | list[list[TokenId]]
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: Annotated[int, Field(ge=1, le=2**32 - 1)] | None = None
    user: str | None = None

    @field_validator("input")
    @classmethod
    def _not_empty(cls, value: Any) -> Any:
        if value == "" or value == [] or (isinstance(value, list) and [] in value):
            raise ValueError("input must not be empty")
        return value


def usage_json(prompt: int, completion: int, cached: int) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached},
    }
