"""The contract's messages as the /osaurus/v1 routes' JSON: the proto's field names, timestamps
as RFC 3339 text, 64-bit counts as numbers (proto3's JSON mapping would make them strings),
capabilities as words."""

from __future__ import annotations

from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp

from osaurus.v1 import model_pb2, system_pb2
from rest_bridge.capabilities import capability_words


def _time(stamp: Timestamp) -> str:
    return stamp.ToJsonString()


def model(m: model_pb2.Model) -> dict[str, Any]:
    return {
        "id": m.id,
        "path": m.path,
        "size_bytes": m.size_bytes,
        "architecture": m.architecture,
        "quantization": m.quantization,
        "context_length": m.context_length,
        "loaded": m.loaded,
        "modified_at": _time(m.modified_time),
        "precision": m.precision,
        "memory_bytes": m.memory_bytes,
        "expires_at": _time(m.expire_time) if m.HasField("expire_time") else None,
        "parameter_count": m.parameter_count,
        "capabilities": capability_words(m.capabilities),
    }


def status(s: system_pb2.GetStatusResponse, loaded: list[model_pb2.Model], target: str) -> dict:
    return {
        "version": s.version,
        "uptime_seconds": s.uptime_seconds,
        "device": s.device,
        "mlx_version": s.mlx_version,
        "cpu_kernel": s.cpu_kernel,
        "blas": s.blas,
        "models_dir": s.models_dir,
        "grpc_target": target,
        "running_requests": s.running_requests,
        "queued_requests": s.queued_requests,
        "request_limit": s.request_limit,
        "generated_tokens": s.generated_tokens,
        "kv_cache_bytes": s.kv_cache_bytes,
        "kv_cache_budget_bytes": s.kv_cache_budget_bytes,
        "loaded_models": [model(m) for m in loaded],
    }


def hub_model(m: model_pb2.HubModel) -> dict[str, Any]:
    return {
        "repo_id": m.repo_id,
        "local_id": m.local_id,
        "size_bytes": m.size_bytes,
        "mlx_compatible": m.mlx_compatible,
        "downloaded": m.downloaded,
        "downloads": m.downloads,
        "likes": m.likes,
        "last_modified": (
            _time(m.last_modified_time) if m.HasField("last_modified_time") else None
        ),
    }


def pull_event(event: model_pb2.PullModelResponse) -> dict[str, Any]:
    if event.HasField("done"):
        done = event.done
        return {"type": "done", "model": model(done.model), "already_present": done.already_present}
    p = event.progress
    return {
        "type": "progress",
        "bytes_done": p.bytes_done,
        "bytes_total": p.bytes_total,
        "current_file": p.current_file,
        "bytes_per_second": p.bytes_per_second,
        "eta_seconds": p.eta_seconds,
    }


def stats(s: system_pb2.WatchSystemStatsResponse) -> dict[str, Any]:
    return {
        "timestamp": s.timestamp,
        "cpu_percent": s.cpu_percent,
        "memory_used_bytes": s.memory_used_bytes,
        "memory_total_bytes": s.memory_total_bytes,
        "process_rss_bytes": s.process_rss_bytes,
        "running_requests": s.running_requests,
        "queued_requests": s.queued_requests,
        "generated_tokens": s.generated_tokens,
        "tokens_per_second": s.tokens_per_second,
    }
