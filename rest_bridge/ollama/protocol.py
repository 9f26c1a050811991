"""Ollama's request shapes (pydantic), field by field as docs/api.md of ollama/ollama has them.

Types are strict, as Ollama's JSON decoding is (a string where a number belongs is a 400), and
unknown fields are ignored. Values the contract defines (sampling ranges, stop strings, at least
one message) are checked by the server; here only what Ollama's API adds.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from osaurus.durations import parse_duration
from rest_bridge.fields import KeepAlive

_REQUEST_CONFIG = ConfigDict(extra="ignore", strict=True)


class Options(BaseModel):
    """The runtime options osaurus applies; Ollama's others (num_thread, mirostat...) are
    accepted and ignored, as Ollama ignores the ones its runner does not use."""

    model_config = ConfigDict(extra="ignore", strict=True)
    temperature: float | None = None
    top_p: float | None = None
    top_k: Annotated[int, Field(ge=-(2**31), le=2**31 - 1)] | None = None
    min_p: float | None = None
    # -1: until the context is full, -2: fill the context (Ollama's meanings); else >= 1.
    num_predict: int | None = None
    stop: list[str] | None = None
    seed: int | None = None
    repeat_penalty: float | None = None
    num_ctx: Annotated[int, Field(ge=1)] | None = None


class FunctionCall(BaseModel):
    model_config = _REQUEST_CONFIG
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)  # an object, not JSON text


class ToolCall(BaseModel):
    model_config = _REQUEST_CONFIG
    function: FunctionCall


class Message(BaseModel):
    model_config = _REQUEST_CONFIG
    role: Literal["system", "user", "assistant", "tool"]
    content: str = ""
    images: list[str] | None = None
    tool_calls: list[ToolCall] | None = None
    thinking: str | None = None
    tool_name: str | None = None  # a tool result's function name


class FunctionDefinition(BaseModel):
    model_config = _REQUEST_CONFIG
    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None


class Tool(BaseModel):
    model_config = _REQUEST_CONFIG
    type: Literal["function"] = "function"
    function: FunctionDefinition


class _ModelNamed(BaseModel):
    """A request naming a model as `model`, or as older clients do, `name`."""

    model_config = _REQUEST_CONFIG
    model: str

    @model_validator(mode="before")
    @classmethod
    def _name_is_model(cls, data: Any) -> Any:
        if isinstance(data, dict) and "model" not in data and "name" in data:
            return {**data, "model": data["name"]}
        return data


class GenerationBase(_ModelNamed):
    format: Literal["json", ""] | dict[str, Any] | None = None
    options: Options | None = None
    stream: bool = True
    keep_alive: KeepAlive | None = None
    think: bool | Literal["high", "medium", "low"] | None = None

    def keep_alive_seconds(self) -> float | None:
        return None if self.keep_alive is None else parse_duration(self.keep_alive)


class ChatRequest(GenerationBase):
    messages: list[Message] = Field(default_factory=list)
    tools: list[Tool] | None = None


class GenerateRequest(GenerationBase):
    prompt: str = ""
    system: str | None = None
    template: str | None = None
    suffix: str | None = None
    raw: bool = False
    images: list[str] | None = None
    context: list[int] | None = None  # deprecated by Ollama; ignored


class ModelRequest(_ModelNamed):
    """show, delete, pull: one model."""

    stream: bool = True
    insecure: bool = False
    verbose: bool = False


class EmbedRequest(_ModelNamed):
    """/api/embed: `input` is a text or texts."""

    input: str | list[str]
    truncate: bool = True
    dimensions: Annotated[int, Field(ge=1, le=2**32 - 1)] | None = None
    options: Options | None = None
    keep_alive: KeepAlive | None = None


class EmbeddingsRequest(_ModelNamed):
    """/api/embeddings, the older route: one `prompt`."""

    prompt: str
    options: Options | None = None
    keep_alive: KeepAlive | None = None


class CopyRequest(BaseModel):
    model_config = _REQUEST_CONFIG
    source: str
    destination: str
