"""What the engine is asked to do and what it answers: plain dataclasses, no transport."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from osaurus.chat.messages import Message
from osaurus.chat.tools import Tool, ToolChoice


@dataclass(frozen=True)
class SamplingParams:
    """None means "the default": greedy unless a temperature is set, no filter, no penalty."""

    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    min_p: float | None = None
    repetition_penalty: float | None = None
    seed: int | None = None


@dataclass(frozen=True)
class ResponseFormat:
    """The reply must be JSON: any object ("json_object"), or valid against `schema`."""

    type: str  # "json_object" | "json_schema"
    schema: dict[str, Any] | None = None
    name: str = ""


@dataclass(frozen=True)
class GenerationRequest:
    model: str
    messages: list[Message] | None = None  # a chat, rendered with the model's template...
    prompt: str | None = None  # ...or a raw prompt
    prompt_token_ids: list[int] | None = None  # ...or a raw prompt's token ids
    sampling: SamplingParams = field(default_factory=SamplingParams)
    max_tokens: int | None = None
    stop: list[str] = field(default_factory=list)
    session_id: str = ""
    response_format: ResponseFormat | None = None  # enforced by constrained decoding
    tools: list[Tool] = field(default_factory=list)
    tool_choice: ToolChoice = field(default_factory=ToolChoice)
    parallel_tool_calls: bool = True  # "required" may make several calls (OpenAI's default)
    keep_alive: float | None = None  # seconds the model stays loaded when idle; <0 forever
    ignore_eos: bool = False  # generate past end-of-turn tokens, up to max_tokens
    speculative: bool | None = None  # prompt-lookup decoding when alone; None: the server's
    logprobs: int | None = None  # each token's logprob and this many alternatives; None: none
    thinking: bool | None = None  # the template's enable_thinking switch; None: its default
    reasoning_effort: str = ""  # the template's reasoning_effort; empty: its default


@dataclass(frozen=True)
class Started:
    model: str
    prompt_tokens: int
    cached_tokens: int = 0  # prompt tokens found in a KV cache (not prefilled again)


@dataclass(frozen=True)
class TokenLogprob:
    """A generated token's log probability, under the distribution it was sampled from (after
    constraints and penalties, before temperature), and the most likely alternatives."""

    token_id: int
    token: str
    logprob: float
    top: list[tuple[int, str, float]] = field(default_factory=list)  # (id, text, logprob)


@dataclass(frozen=True)
class TextChunk:
    text: str
    token_ids: list[int]
    logprobs: list[TokenLogprob] = field(default_factory=list)  # one per token id, when asked


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True)
class Timings:
    time_to_first_token: float
    prompt_tokens_per_second: float
    generation_tokens_per_second: float
    total_seconds: float
    load_seconds: float = 0.0  # waiting for the model to load (0 when it was loaded)


@dataclass(frozen=True)
class ReasoningChunk:
    """Text the model wrote while thinking (between its reasoning markers)."""

    text: str


@dataclass(frozen=True)
class ToolCallChunk:
    """A piece of a tool call: the first for a call has id and name, later ones argument text."""

    index: int
    id: str = ""
    name: str = ""
    arguments: str = ""


@dataclass(frozen=True)
class Finished:
    finish_reason: str  # "stop" | "length" | "cancelled" | "tool_calls"
    usage: Usage
    timings: Timings
    model: str
    stop_sequence: str = ""  # the request's stop string that ended it, if one did


GenerationEvent = Started | TextChunk | ReasoningChunk | ToolCallChunk | Finished
