"""What the Ollama routes answer, as pydantic models, for /openapi.json only (see
rest_bridge/openapi.py; tests/rest_bridge/test_openapi.py checks real answers against them).
Names start with Ollama: the components are shared with the other families."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field


class OllamaReplyFunction(BaseModel):
    name: str
    arguments: dict[str, Any]


class OllamaReplyToolCall(BaseModel):
    function: OllamaReplyFunction


class OllamaReplyMessage(BaseModel):
    role: Literal["assistant"]
    content: str
    thinking: str | None = None
    tool_calls: list[OllamaReplyToolCall] | None = None


class _Answer(BaseModel):
    """Streamed: every line has model, created_at and done; the last (done: true) adds the
    counts and durations (nanoseconds). A request with nothing to generate loads (or unloads)
    the model and answers one done line, done_reason load (or unload)."""

    model: str
    created_at: str
    done: bool
    done_reason: Literal["stop", "length", "load", "unload"] | None = None
    total_duration: int | None = None
    load_duration: int | None = None
    prompt_eval_count: int | None = None
    prompt_eval_duration: int | None = None
    eval_count: int | None = None
    eval_duration: int | None = None


class OllamaChatResponse(_Answer):
    message: OllamaReplyMessage | None = None


class OllamaGenerateResponse(_Answer):
    response: str
    thinking: str | None = None


class OllamaVersion(BaseModel):
    version: str


class OllamaModelDetails(BaseModel):
    parent_model: str
    format: str
    family: str
    families: list[str] | None
    parameter_size: str
    quantization_level: str


class OllamaTag(BaseModel):
    name: str
    model: str
    modified_at: str
    size: int = Field(description="Bytes on disk.")
    digest: str
    details: OllamaModelDetails


class OllamaTags(BaseModel):
    models: list[OllamaTag]


class OllamaRunningModel(BaseModel):
    name: str
    model: str
    size: int = Field(description="Bytes in memory.")
    digest: str
    details: OllamaModelDetails
    size_vram: int
    context_length: int
    expires_at: str | None = None


class OllamaRunning(BaseModel):
    models: list[OllamaRunningModel]


class OllamaShow(BaseModel):
    modelfile: str
    parameters: str
    template: str
    details: OllamaModelDetails
    model_info: dict[str, Any]
    capabilities: list[Literal["completion", "tools", "thinking", "embedding"]]
    modified_at: str


class OllamaPullStatus(BaseModel):
    """Not streamed: one {"status": "success"}. Streamed: the statuses as Ollama sends them,
    with the download's digest, total and completed bytes while it runs."""

    status: str
    digest: str | None = None
    total: int | None = None
    completed: int | None = None


class OllamaEmbed(BaseModel):
    model: str
    embeddings: list[list[float]]
    total_duration: int
    load_duration: int
    prompt_eval_count: int


class OllamaEmbedding(BaseModel):
    embedding: list[float]


class OllamaError(BaseModel):
    error: str
