"""Server settings. Every setting has a command-line flag and an OSU_* environment variable."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_HOST = "127.0.0.1"
DEFAULT_GRPC_PORT = 50051
DEFAULT_HTTP_PORT = 8080


def _env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def default_models_dir() -> Path:
    return Path(os.environ.get("OSU_MODELS_DIR", "~/MLXModels")).expanduser()


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME", "~/.cache")
    return Path(os.environ.get("OSU_CACHE_DIR", f"{base}/osaurus")).expanduser()


@dataclass
class Settings:
    host: str = field(default_factory=lambda: os.environ.get("OSU_HOST", DEFAULT_HOST))
    grpc_port: int = field(
        default_factory=lambda: int(os.environ.get("OSU_GRPC_PORT", DEFAULT_GRPC_PORT))
    )
    http_port: int = field(
        default_factory=lambda: int(os.environ.get("OSU_HTTP_PORT", DEFAULT_HTTP_PORT))
    )
    models_dir: Path = field(default_factory=default_models_dir)
    cache_dir: Path = field(default_factory=default_cache_dir)
    http: bool = field(default_factory=lambda: _env_bool("OSU_HTTP", True))
    default_model: bool = field(default_factory=lambda: _env_bool("OSU_DEFAULT_MODEL", True))
    # Use OpenBLAS under MLX's CPU backend when the machine has it (Linux only).
    use_openblas: bool = field(default_factory=lambda: _env_bool("OSU_OPENBLAS", True))
    # Generation length when a request sets none (capped by the context length).
    default_max_tokens: int = field(
        default_factory=lambda: int(os.environ.get("OSU_DEFAULT_MAX_TOKENS", "2048"))
    )

    def __post_init__(self) -> None:
        self.models_dir = Path(self.models_dir).expanduser()
        self.cache_dir = Path(self.cache_dir).expanduser()
