"""The server's Prometheus metrics (prometheus-client), in a registry of their own.

Named osaurus_* after Prometheus' conventions (units in the name, counters end in _total). Each
says in its help which vLLM metric it corresponds to, so dashboards built for vLLM map over.
Counters and histograms are updated as generations end (the engine reports each one, whichever
transport asked); the gauges are read when the metrics are scraped (SystemService.GetMetrics,
served by the bridge at /metrics).
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)

from osaurus.engine.request import Finished
from osaurus.errors import OsaurusError

# Seconds: from a few milliseconds (a cached prompt) to minutes (a long prefill on the CPU).
_LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
_TOKEN_BUCKETS = (0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.15, 0.2, 0.3, 0.5, 1, 2.5)


class ServerMetrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.requests = Counter(
            "osaurus_generation_requests",
            "Generations finished, by model and finish reason (vllm:request_success_total)",
            ["model", "finish_reason"],
            registry=r,
        )
        self.failures = Counter(
            "osaurus_generation_failures",
            "Generations refused or failed, by reason, e.g. RESOURCE_EXHAUSTED, MODEL_NOT_FOUND",
            ["reason"],
            registry=r,
        )
        self.prompt_tokens = Counter(
            "osaurus_prompt_tokens",
            "Prompt tokens of finished generations (vllm:prompt_tokens_total)",
            ["model"],
            registry=r,
        )
        self.cached_prompt_tokens = Counter(
            "osaurus_prompt_tokens_cached",
            "Prompt tokens served from a session or prefix KV cache (vllm:prefix_cache_hits)",
            ["model"],
            registry=r,
        )
        self.generation_tokens = Counter(
            "osaurus_generation_tokens",
            "Tokens generated (vllm:generation_tokens_total)",
            ["model"],
            registry=r,
        )
        self.ttft = Histogram(
            "osaurus_time_to_first_token_seconds",
            "From arrival to the first token (vllm:time_to_first_token_seconds)",
            ["model"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.tpot = Histogram(
            "osaurus_time_per_output_token_seconds",
            "A generation's mean time between tokens after the first "
            "(vllm:time_per_output_token_seconds, vllm:inter_token_latency_seconds)",
            ["model"],
            buckets=_TOKEN_BUCKETS,
            registry=r,
        )
        self.duration = Histogram(
            "osaurus_request_duration_seconds",
            "From arrival to the last token (vllm:e2e_request_latency_seconds)",
            ["model"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.running = Gauge(
            "osaurus_requests_running",
            "Generations in a batch slot (vllm:num_requests_running)",
            registry=r,
        )
        self.waiting = Gauge(
            "osaurus_requests_waiting",
            "Generations waiting for a slot or their model (vllm:num_requests_waiting)",
            registry=r,
        )
        self.kv_cache_bytes = Gauge(
            "osaurus_kv_cache_bytes",
            "KV caches kept between requests (vllm:kv_cache_usage_perc, as bytes)",
            registry=r,
        )
        self.kv_cache_budget_bytes = Gauge(
            "osaurus_kv_cache_budget_bytes", "Memory allowed for kept KV caches", registry=r
        )
        self.model_memory_bytes = Gauge(
            "osaurus_model_memory_bytes", "Memory of each loaded model", ["model"], registry=r
        )
        self.models_loaded = Gauge("osaurus_models_loaded", "Models loaded now", registry=r)
        # process_resident_memory_bytes, process_cpu_seconds_total...: the usual names.
        ProcessCollector(registry=r)

    def finished(self, event: Finished) -> None:
        model, usage, t = event.model, event.usage, event.timings
        self.requests.labels(model, event.finish_reason).inc()
        self.prompt_tokens.labels(model).inc(usage.prompt_tokens)
        self.cached_prompt_tokens.labels(model).inc(usage.cached_tokens)
        self.generation_tokens.labels(model).inc(usage.completion_tokens)
        if usage.completion_tokens:
            self.ttft.labels(model).observe(t.time_to_first_token)
        if usage.completion_tokens > 1:
            decode = max(t.total_seconds - t.time_to_first_token, 0.0)
            self.tpot.labels(model).observe(decode / (usage.completion_tokens - 1))
        self.duration.labels(model).observe(t.total_seconds)

    def failed(self, error: OsaurusError) -> None:
        self.failures.labels(error.reason).inc()

    def set_loaded(self, memory_by_model: Iterable[tuple[str, int]]) -> None:
        loaded = dict(memory_by_model)
        self.model_memory_bytes.clear()
        for model, memory in loaded.items():
            self.model_memory_bytes.labels(model).set(memory)
        self.models_loaded.set(len(loaded))

    def text(self) -> str:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry).decode()
