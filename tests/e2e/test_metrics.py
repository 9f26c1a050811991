"""GET /metrics on the real server: Prometheus' text format, parsed with prometheus-client's
own parser; the counters and histograms move with real requests, and the gauges say what runs."""

from __future__ import annotations

import httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families


@pytest.fixture(scope="module")
def http(server):
    with httpx.Client(base_url=server.http_url, timeout=60) as client:
        yield client


def _samples(http) -> dict[tuple[str, tuple], float]:
    response = http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def _value(samples, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_move_with_requests(server, http, model_id) -> None:
    before = _samples(http)
    client = openai.OpenAI(base_url=f"{server.http_url}/v1", api_key="x", max_retries=0)
    reply = client.chat.completions.create(
        model=model_id, messages=[{"role": "user", "content": "Hi"}], max_tokens=5
    )
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(
            model="no-such-model", messages=[{"role": "user", "content": "Hi"}]
        )
    after = _samples(http)

    def grew(name: str, by: float | None = None, **labels) -> None:
        delta = _value(after, name, **labels) - _value(before, name, **labels)
        assert delta > 0 if by is None else delta == by, (name, labels, delta)

    reason = reply.choices[0].finish_reason
    grew("osaurus_generation_requests_total", 1, model=model_id, finish_reason=reason)
    grew("osaurus_generation_tokens_total", reply.usage.completion_tokens, model=model_id)
    grew("osaurus_prompt_tokens_total", reply.usage.prompt_tokens, model=model_id)
    grew("osaurus_time_to_first_token_seconds_count", 1, model=model_id)
    grew("osaurus_request_duration_seconds_count", 1, model=model_id)
    grew("osaurus_generation_failures_total", 1, reason="MODEL_NOT_FOUND")
    route = "/v1/chat/completions"
    grew("osaurus_http_requests_total", 1, route=route, method="POST", status="200")
    grew("osaurus_http_requests_total", 1, route=route, method="POST", status="404")
    assert _value(after, "osaurus_requests_running") == 0
    assert _value(after, "osaurus_models_loaded") >= 1
    assert _value(after, "osaurus_model_memory_bytes", model=model_id) > 0
    assert _value(after, "osaurus_kv_cache_budget_bytes") > 0
    assert _value(after, "process_resident_memory_bytes") > 0
