"""Request bodies of the /osaurus/v1 routes."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from rest_bridge.fields import KeepAlive

_REQUEST_CONFIG = ConfigDict(extra="ignore", strict=True)


class LoadRequest(BaseModel):
    model_config = _REQUEST_CONFIG
    # How long it stays loaded once idle ("5m", 300, -1 forever); unset: the server default.
    keep_alive: KeepAlive | None = None


class PullRequest(BaseModel):
    model_config = _REQUEST_CONFIG
    repo_id: str = Field(description="org/name on Hugging Face.")
    revision: str = ""


class ImportRequest(BaseModel):
    model_config = _REQUEST_CONFIG
    gguf_path: str = Field(description="Path of the .gguf file, as the server sees it.")
    name: str = ""
