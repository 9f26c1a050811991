from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class GetMetricsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetMetricsResponse(_message.Message):
    __slots__ = ("text",)
    TEXT_FIELD_NUMBER: _ClassVar[int]
    text: str
    def __init__(self, text: _Optional[str] = ...) -> None: ...

class AuthenticateRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class AuthenticateResponse(_message.Message):
    __slots__ = ("keys_required", "role")
    KEYS_REQUIRED_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    keys_required: bool
    role: str
    def __init__(self, keys_required: _Optional[bool] = ..., role: _Optional[str] = ...) -> None: ...

class GetStatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetStatusResponse(_message.Message):
    __slots__ = ("version", "uptime_seconds", "loaded_models", "device", "mlx_version", "models_dir", "blas", "active_requests", "request_limit", "kv_cache_bytes", "kv_cache_budget_bytes", "cpu_kernel", "running_requests", "queued_requests", "generated_tokens")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    UPTIME_SECONDS_FIELD_NUMBER: _ClassVar[int]
    LOADED_MODELS_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    MLX_VERSION_FIELD_NUMBER: _ClassVar[int]
    MODELS_DIR_FIELD_NUMBER: _ClassVar[int]
    BLAS_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_REQUESTS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_LIMIT_FIELD_NUMBER: _ClassVar[int]
    KV_CACHE_BYTES_FIELD_NUMBER: _ClassVar[int]
    KV_CACHE_BUDGET_BYTES_FIELD_NUMBER: _ClassVar[int]
    CPU_KERNEL_FIELD_NUMBER: _ClassVar[int]
    RUNNING_REQUESTS_FIELD_NUMBER: _ClassVar[int]
    QUEUED_REQUESTS_FIELD_NUMBER: _ClassVar[int]
    GENERATED_TOKENS_FIELD_NUMBER: _ClassVar[int]
    version: str
    uptime_seconds: float
    loaded_models: _containers.RepeatedScalarFieldContainer[str]
    device: str
    mlx_version: str
    models_dir: str
    blas: str
    active_requests: int
    request_limit: int
    kv_cache_bytes: int
    kv_cache_budget_bytes: int
    cpu_kernel: str
    running_requests: int
    queued_requests: int
    generated_tokens: int
    def __init__(self, version: _Optional[str] = ..., uptime_seconds: _Optional[float] = ..., loaded_models: _Optional[_Iterable[str]] = ..., device: _Optional[str] = ..., mlx_version: _Optional[str] = ..., models_dir: _Optional[str] = ..., blas: _Optional[str] = ..., active_requests: _Optional[int] = ..., request_limit: _Optional[int] = ..., kv_cache_bytes: _Optional[int] = ..., kv_cache_budget_bytes: _Optional[int] = ..., cpu_kernel: _Optional[str] = ..., running_requests: _Optional[int] = ..., queued_requests: _Optional[int] = ..., generated_tokens: _Optional[int] = ...) -> None: ...

class WatchSystemStatsRequest(_message.Message):
    __slots__ = ("interval_seconds",)
    INTERVAL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    interval_seconds: float
    def __init__(self, interval_seconds: _Optional[float] = ...) -> None: ...

class WatchSystemStatsResponse(_message.Message):
    __slots__ = ("cpu_percent", "memory_used_bytes", "memory_total_bytes", "process_rss_bytes", "timestamp", "running_requests", "queued_requests", "generated_tokens", "tokens_per_second")
    CPU_PERCENT_FIELD_NUMBER: _ClassVar[int]
    MEMORY_USED_BYTES_FIELD_NUMBER: _ClassVar[int]
    MEMORY_TOTAL_BYTES_FIELD_NUMBER: _ClassVar[int]
    PROCESS_RSS_BYTES_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    RUNNING_REQUESTS_FIELD_NUMBER: _ClassVar[int]
    QUEUED_REQUESTS_FIELD_NUMBER: _ClassVar[int]
    GENERATED_TOKENS_FIELD_NUMBER: _ClassVar[int]
    TOKENS_PER_SECOND_FIELD_NUMBER: _ClassVar[int]
    cpu_percent: float
    memory_used_bytes: int
    memory_total_bytes: int
    process_rss_bytes: int
    timestamp: float
    running_requests: int
    queued_requests: int
    generated_tokens: int
    tokens_per_second: float
    def __init__(self, cpu_percent: _Optional[float] = ..., memory_used_bytes: _Optional[int] = ..., memory_total_bytes: _Optional[int] = ..., process_rss_bytes: _Optional[int] = ..., timestamp: _Optional[float] = ..., running_requests: _Optional[int] = ..., queued_requests: _Optional[int] = ..., generated_tokens: _Optional[int] = ..., tokens_per_second: _Optional[float] = ...) -> None: ...
