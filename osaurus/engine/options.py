"""The engine's options and their defaults (no MLX here: the settings table reads these)."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Float32Policy(enum.StrEnum):
    """CPU only: dequantize models to float32 when it fits (auto), always, or never
    (see osaurus.engine.precision)."""

    AUTO = "auto"
    ALWAYS = "always"
    NEVER = "never"


class KVCacheDtype(enum.StrEnum):
    """What the KV cache of the native llama decoder layers holds (see decoder_layers): float16
    is llama.cpp's default, half the memory of float32 at the same speed (bench/attention.py)."""

    FLOAT16 = "float16"
    FLOAT32 = "float32"


@dataclass(frozen=True)
class EngineOptions:
    default_max_tokens: int = 2048  # generation length when a request sets none
    float32: Float32Policy = Float32Policy.AUTO
    kv_cache_dtype: KVCacheDtype = KVCacheDtype.FLOAT16
    max_batch_size: int = 16  # sequences decoding together, per model
    max_queue: int = 64  # requests waiting beyond those
    kv_cache_bytes: int = 2 << 30  # budget for caches kept between requests
    prefix_cache: bool = True
    prefill_step: int | None = None  # None: by device (see scheduler.default_prefill_step)
    keep_alive: float | None = 300.0  # seconds idle before a model unloads; None: never
    model_memory_bytes: int = 16 << 30  # budget for loaded models' weights
    max_loaded_models: int = 0  # 0: as many as the memory budget allows
    speculative: bool = True  # prompt-lookup decoding for a greedy request decoding alone
