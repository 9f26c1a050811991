"""Server settings. Every setting has a command-line flag and an OSU_* environment variable."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from osaurus.errors import InvalidArgument

DEFAULT_HOST = "127.0.0.1"
DEFAULT_GRPC_PORT = 50051
DEFAULT_HTTP_PORT = 8080
FLOAT32_POLICIES = ("auto", "always", "never")  # see osaurus.engine.precision


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


def parse_duration(value: str | float) -> float:
    """Seconds from "300", "90s", "5m", "1h" or a number (Ollama's keep_alive style); negative
    means forever."""
    if isinstance(value, int | float):
        return float(value)
    text = value.strip().lower()
    units = {"s": 1, "m": 60, "h": 3600}
    scale = units.get(text[-1:])
    try:
        return float(text[:-1]) * scale if scale else float(text)
    except ValueError:
        raise InvalidArgument(
            f"not a duration: {value!r} (use seconds, or a number with s, m or h)"
        ) from None


def default_model_memory_mb() -> int:
    """Three quarters of RAM for loaded models' weights; the rest for KV caches and the system."""
    import psutil

    return psutil.virtual_memory().total * 3 // 4 >> 20


def default_kv_cache_mb() -> int:
    """An eighth of RAM, at most 8 GiB: room for many chats without crowding the weights."""
    import psutil

    return min(psutil.virtual_memory().total // 8, 8 << 30) >> 20


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

    # CPU only: dequantize models to float32 when it fits (auto), always, or never.
    float32: str = field(default_factory=lambda: os.environ.get("OSU_FLOAT32", "auto"))
    # Sequences decoding together per model, and requests allowed to wait beyond them.
    max_batch_size: int = field(
        default_factory=lambda: int(os.environ.get("OSU_MAX_BATCH_SIZE", "16"))
    )
    max_queue: int = field(default_factory=lambda: int(os.environ.get("OSU_MAX_QUEUE", "64")))
    # Memory for KV caches kept between requests (sessions and prefix reuse), in MiB.
    kv_cache_mb: int = field(
        default_factory=lambda: int(os.environ.get("OSU_KV_CACHE_MB", str(default_kv_cache_mb())))
    )
    prefix_cache: bool = field(default_factory=lambda: _env_bool("OSU_PREFIX_CACHE", True))
    # Prompt-lookup speculative decoding for a greedy request decoding alone.
    speculative: bool = field(default_factory=lambda: _env_bool("OSU_SPECULATIVE", True))
    # Idle time before a model unloads (seconds; negative: never), like Ollama's keep_alive.
    keep_alive: float = field(
        default_factory=lambda: parse_duration(os.environ.get("OSU_KEEP_ALIVE", "5m"))
    )
    # Memory for loaded models' weights; loading past it unloads the least recently used.
    model_memory_mb: int = field(
        default_factory=lambda: int(
            os.environ.get("OSU_MODEL_MEMORY_MB", str(default_model_memory_mb()))
        )
    )
    # At most this many models loaded at once (0: as many as fit; 1: one at a time).
    max_loaded_models: int = field(
        default_factory=lambda: int(os.environ.get("OSU_MAX_LOADED_MODELS", "0"))
    )

    def __post_init__(self) -> None:
        self.models_dir = Path(self.models_dir).expanduser()
        self.cache_dir = Path(self.cache_dir).expanduser()
        self.validate()

    def validate(self) -> None:
        """Refuse settings that make no sense, naming the setting (called again after flags)."""
        if self.float32 not in FLOAT32_POLICIES:
            raise InvalidArgument(
                f"float32 must be one of {', '.join(FLOAT32_POLICIES)}, not {self.float32!r}"
            )
        for name in ("max_batch_size", "kv_cache_mb", "model_memory_mb"):
            if getattr(self, name) < 1:
                raise InvalidArgument(f"{name} must be at least 1")
        if self.max_queue < 0 or self.max_loaded_models < 0:
            raise InvalidArgument("max_queue and max_loaded_models must be 0 or more")
