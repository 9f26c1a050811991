"""What the /osaurus/v1 routes answer, as pydantic models, for /openapi.json only (see
rest_bridge/openapi.py). Fields are the contract's (proto/osaurus/v1), timestamps as RFC 3339
text and 64-bit counts as JSON numbers."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class ServerModel(BaseModel):
    id: str
    path: str
    size_bytes: int = Field(description="Bytes on disk.")
    architecture: str
    quantization: str
    context_length: int
    loaded: bool
    modified_at: str
    precision: str = Field(description="How it runs when loaded, e.g. '4-bit (osaurus kernel)'.")
    memory_bytes: int = Field(description="Bytes it holds in memory when loaded.")
    expires_at: str | None = Field(description="When it unloads if left idle; null: never.")
    parameter_count: int
    capabilities: list[Literal["completion", "tools", "thinking", "embedding"]]


class ServerStatus(BaseModel):
    version: str
    uptime_seconds: float
    device: str
    mlx_version: str
    cpu_kernel: str
    blas: str
    models_dir: str
    grpc_target: str = Field(description="The gRPC server this bridge talks to.")
    running_requests: int
    queued_requests: int
    request_limit: int
    generated_tokens: int
    kv_cache_bytes: int
    kv_cache_budget_bytes: int
    loaded_models: list[ServerModel]


class ServerModelList(BaseModel):
    models: list[ServerModel]


class LoadedModel(BaseModel):
    model: ServerModel
    load_seconds: float


class UnloadedModel(BaseModel):
    was_loaded: bool


class DeletedModel(BaseModel):
    freed_bytes: int


class ImportedModel(BaseModel):
    model: ServerModel


class HubModel(BaseModel):
    repo_id: str
    local_id: str
    size_bytes: int
    mlx_compatible: bool
    downloaded: bool
    downloads: int
    likes: int
    last_modified: str | None


class HubSearch(BaseModel):
    models: list[HubModel]
    hub_reachable: bool
    note: str = Field(description="Why the list is the curated one (the hub's error); else ''.")


class PullEvent(BaseModel):
    """One server-sent event of a pull: progress while it downloads, then done (or error)."""

    type: Literal["progress", "done", "error"]
    bytes_done: int | None = None
    bytes_total: int | None = None
    current_file: str | None = None
    bytes_per_second: float | None = None
    eta_seconds: float | None = None
    model: ServerModel | None = None
    already_present: bool | None = None
    error: dict[str, str | None] | None = None


class SystemStats(BaseModel):
    """One server-sent event of the stats stream."""

    timestamp: float
    cpu_percent: float
    memory_used_bytes: int
    memory_total_bytes: int
    process_rss_bytes: int
    running_requests: int
    queued_requests: int
    generated_tokens: int
    tokens_per_second: float
