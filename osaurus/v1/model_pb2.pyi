import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ModelCapability(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MODEL_CAPABILITY_UNSPECIFIED: _ClassVar[ModelCapability]
    MODEL_CAPABILITY_COMPLETION: _ClassVar[ModelCapability]
    MODEL_CAPABILITY_TOOLS: _ClassVar[ModelCapability]
    MODEL_CAPABILITY_THINKING: _ClassVar[ModelCapability]
    MODEL_CAPABILITY_EMBEDDING: _ClassVar[ModelCapability]

class SearchSort(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SEARCH_SORT_UNSPECIFIED: _ClassVar[SearchSort]
    SEARCH_SORT_DOWNLOADS: _ClassVar[SearchSort]
    SEARCH_SORT_LIKES: _ClassVar[SearchSort]
    SEARCH_SORT_RECENT: _ClassVar[SearchSort]
MODEL_CAPABILITY_UNSPECIFIED: ModelCapability
MODEL_CAPABILITY_COMPLETION: ModelCapability
MODEL_CAPABILITY_TOOLS: ModelCapability
MODEL_CAPABILITY_THINKING: ModelCapability
MODEL_CAPABILITY_EMBEDDING: ModelCapability
SEARCH_SORT_UNSPECIFIED: SearchSort
SEARCH_SORT_DOWNLOADS: SearchSort
SEARCH_SORT_LIKES: SearchSort
SEARCH_SORT_RECENT: SearchSort

class Model(_message.Message):
    __slots__ = ("id", "path", "size_bytes", "architecture", "quantization", "context_length", "loaded", "modified_time", "precision", "memory_bytes", "expire_time", "parameter_count", "capabilities", "chat_template", "config_json")
    ID_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    ARCHITECTURE_FIELD_NUMBER: _ClassVar[int]
    QUANTIZATION_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_LENGTH_FIELD_NUMBER: _ClassVar[int]
    LOADED_FIELD_NUMBER: _ClassVar[int]
    MODIFIED_TIME_FIELD_NUMBER: _ClassVar[int]
    PRECISION_FIELD_NUMBER: _ClassVar[int]
    MEMORY_BYTES_FIELD_NUMBER: _ClassVar[int]
    EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    PARAMETER_COUNT_FIELD_NUMBER: _ClassVar[int]
    CAPABILITIES_FIELD_NUMBER: _ClassVar[int]
    CHAT_TEMPLATE_FIELD_NUMBER: _ClassVar[int]
    CONFIG_JSON_FIELD_NUMBER: _ClassVar[int]
    id: str
    path: str
    size_bytes: int
    architecture: str
    quantization: str
    context_length: int
    loaded: bool
    modified_time: _timestamp_pb2.Timestamp
    precision: str
    memory_bytes: int
    expire_time: _timestamp_pb2.Timestamp
    parameter_count: int
    capabilities: _containers.RepeatedScalarFieldContainer[ModelCapability]
    chat_template: str
    config_json: str
    def __init__(self, id: _Optional[str] = ..., path: _Optional[str] = ..., size_bytes: _Optional[int] = ..., architecture: _Optional[str] = ..., quantization: _Optional[str] = ..., context_length: _Optional[int] = ..., loaded: _Optional[bool] = ..., modified_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., precision: _Optional[str] = ..., memory_bytes: _Optional[int] = ..., expire_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., parameter_count: _Optional[int] = ..., capabilities: _Optional[_Iterable[_Union[ModelCapability, str]]] = ..., chat_template: _Optional[str] = ..., config_json: _Optional[str] = ...) -> None: ...

class ListModelsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListModelsResponse(_message.Message):
    __slots__ = ("models",)
    MODELS_FIELD_NUMBER: _ClassVar[int]
    models: _containers.RepeatedCompositeFieldContainer[Model]
    def __init__(self, models: _Optional[_Iterable[_Union[Model, _Mapping]]] = ...) -> None: ...

class GetModelRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class GetModelResponse(_message.Message):
    __slots__ = ("model",)
    MODEL_FIELD_NUMBER: _ClassVar[int]
    model: Model
    def __init__(self, model: _Optional[_Union[Model, _Mapping]] = ...) -> None: ...

class LoadModelRequest(_message.Message):
    __slots__ = ("id", "keep_alive_seconds")
    ID_FIELD_NUMBER: _ClassVar[int]
    KEEP_ALIVE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    id: str
    keep_alive_seconds: float
    def __init__(self, id: _Optional[str] = ..., keep_alive_seconds: _Optional[float] = ...) -> None: ...

class LoadModelResponse(_message.Message):
    __slots__ = ("model", "load_seconds")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    LOAD_SECONDS_FIELD_NUMBER: _ClassVar[int]
    model: Model
    load_seconds: float
    def __init__(self, model: _Optional[_Union[Model, _Mapping]] = ..., load_seconds: _Optional[float] = ...) -> None: ...

class UnloadModelRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class UnloadModelResponse(_message.Message):
    __slots__ = ("was_loaded",)
    WAS_LOADED_FIELD_NUMBER: _ClassVar[int]
    was_loaded: bool
    def __init__(self, was_loaded: _Optional[bool] = ...) -> None: ...

class DeleteModelRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class DeleteModelResponse(_message.Message):
    __slots__ = ("freed_bytes",)
    FREED_BYTES_FIELD_NUMBER: _ClassVar[int]
    freed_bytes: int
    def __init__(self, freed_bytes: _Optional[int] = ...) -> None: ...

class ImportModelRequest(_message.Message):
    __slots__ = ("gguf_path", "name")
    GGUF_PATH_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    gguf_path: str
    name: str
    def __init__(self, gguf_path: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class ImportModelResponse(_message.Message):
    __slots__ = ("model",)
    MODEL_FIELD_NUMBER: _ClassVar[int]
    model: Model
    def __init__(self, model: _Optional[_Union[Model, _Mapping]] = ...) -> None: ...

class CopyModelRequest(_message.Message):
    __slots__ = ("source_id", "destination_id")
    SOURCE_ID_FIELD_NUMBER: _ClassVar[int]
    DESTINATION_ID_FIELD_NUMBER: _ClassVar[int]
    source_id: str
    destination_id: str
    def __init__(self, source_id: _Optional[str] = ..., destination_id: _Optional[str] = ...) -> None: ...

class CopyModelResponse(_message.Message):
    __slots__ = ("model",)
    MODEL_FIELD_NUMBER: _ClassVar[int]
    model: Model
    def __init__(self, model: _Optional[_Union[Model, _Mapping]] = ...) -> None: ...

class SearchModelsRequest(_message.Message):
    __slots__ = ("query", "author", "sort", "limit", "curated_only")
    QUERY_FIELD_NUMBER: _ClassVar[int]
    AUTHOR_FIELD_NUMBER: _ClassVar[int]
    SORT_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    CURATED_ONLY_FIELD_NUMBER: _ClassVar[int]
    query: str
    author: str
    sort: SearchSort
    limit: int
    curated_only: bool
    def __init__(self, query: _Optional[str] = ..., author: _Optional[str] = ..., sort: _Optional[_Union[SearchSort, str]] = ..., limit: _Optional[int] = ..., curated_only: _Optional[bool] = ...) -> None: ...

class HubModel(_message.Message):
    __slots__ = ("repo_id", "local_id", "size_bytes", "mlx_compatible", "downloaded", "downloads", "likes", "last_modified_time")
    REPO_ID_FIELD_NUMBER: _ClassVar[int]
    LOCAL_ID_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    MLX_COMPATIBLE_FIELD_NUMBER: _ClassVar[int]
    DOWNLOADED_FIELD_NUMBER: _ClassVar[int]
    DOWNLOADS_FIELD_NUMBER: _ClassVar[int]
    LIKES_FIELD_NUMBER: _ClassVar[int]
    LAST_MODIFIED_TIME_FIELD_NUMBER: _ClassVar[int]
    repo_id: str
    local_id: str
    size_bytes: int
    mlx_compatible: bool
    downloaded: bool
    downloads: int
    likes: int
    last_modified_time: _timestamp_pb2.Timestamp
    def __init__(self, repo_id: _Optional[str] = ..., local_id: _Optional[str] = ..., size_bytes: _Optional[int] = ..., mlx_compatible: _Optional[bool] = ..., downloaded: _Optional[bool] = ..., downloads: _Optional[int] = ..., likes: _Optional[int] = ..., last_modified_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class SearchModelsResponse(_message.Message):
    __slots__ = ("models", "suggestions")
    MODELS_FIELD_NUMBER: _ClassVar[int]
    SUGGESTIONS_FIELD_NUMBER: _ClassVar[int]
    models: _containers.RepeatedCompositeFieldContainer[HubModel]
    suggestions: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, models: _Optional[_Iterable[_Union[HubModel, _Mapping]]] = ..., suggestions: _Optional[_Iterable[str]] = ...) -> None: ...

class PullModelRequest(_message.Message):
    __slots__ = ("repo_id", "revision")
    REPO_ID_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    repo_id: str
    revision: str
    def __init__(self, repo_id: _Optional[str] = ..., revision: _Optional[str] = ...) -> None: ...

class PullProgress(_message.Message):
    __slots__ = ("bytes_done", "bytes_total", "current_file", "bytes_per_second", "eta_seconds")
    BYTES_DONE_FIELD_NUMBER: _ClassVar[int]
    BYTES_TOTAL_FIELD_NUMBER: _ClassVar[int]
    CURRENT_FILE_FIELD_NUMBER: _ClassVar[int]
    BYTES_PER_SECOND_FIELD_NUMBER: _ClassVar[int]
    ETA_SECONDS_FIELD_NUMBER: _ClassVar[int]
    bytes_done: int
    bytes_total: int
    current_file: str
    bytes_per_second: float
    eta_seconds: float
    def __init__(self, bytes_done: _Optional[int] = ..., bytes_total: _Optional[int] = ..., current_file: _Optional[str] = ..., bytes_per_second: _Optional[float] = ..., eta_seconds: _Optional[float] = ...) -> None: ...

class PullDone(_message.Message):
    __slots__ = ("model", "already_present")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    ALREADY_PRESENT_FIELD_NUMBER: _ClassVar[int]
    model: Model
    already_present: bool
    def __init__(self, model: _Optional[_Union[Model, _Mapping]] = ..., already_present: _Optional[bool] = ...) -> None: ...

class PullModelResponse(_message.Message):
    __slots__ = ("progress", "done")
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    progress: PullProgress
    done: PullDone
    def __init__(self, progress: _Optional[_Union[PullProgress, _Mapping]] = ..., done: _Optional[_Union[PullDone, _Mapping]] = ...) -> None: ...
