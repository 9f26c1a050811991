"""Fuzz: schemathesis walks every operation of the bridge's own /openapi.json, against a real
server and model, and checks that no answer is a 5xx, and that every answer has a status, a
content type and a body the document declares.

The server is one of its own (a copy of the models directory, a hub emulator that knows one
repository), since the fuzzer pulls, imports, loads, unloads and deletes. Three things are steered,
not fuzzed: token limits are kept small (the checks are about answers, not long generations: a
fuzzed limit is clamped, and a request with none gets the server's default, set as low);
half the requests that name a model name the real one, so the fuzzer reaches generation instead
of stopping at "model not found"; and the stats stream is asked for two quick samples.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from fake_hub import FakeHub, repo_from_directory
from helpers import hub_env, start_server
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from osaurus.models.default_model import MODEL_ID
from rest_bridge.app import create_app
from rest_bridge.openapi import openapi_document

# Fields that ask for tokens, per family; a fuzzed value is clamped to this.
TOKEN_LIMITS = ("max_tokens", "max_completion_tokens", "max_output_tokens", "num_predict")
MOST_TOKENS = 8
EXAMPLES_PER_OPERATION = 12

# The document the bridge serves, built as it builds it (tested below to be the one served), so
# the cases are known when pytest collects them.
DOCUMENT = openapi_document(create_app("127.0.0.1:1"))
schema = schemathesis.openapi.from_dict(DOCUMENT)


@schema.hook
def flatmap_body(context: Any, body: Any) -> Any:
    if not isinstance(body, dict):
        return st.just(body)
    steered = _small_limits(body)
    if "model" not in steered:
        return st.just(steered)
    return st.sampled_from([steered, {**steered, "model": MODEL_ID}])


@pytest.fixture(scope="module")
def fuzzed_server(models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    work = tmp_path_factory.mktemp("fuzz")
    shutil.copytree(models_dir, work / "models")
    with FakeHub() as hub:
        hub.add(repo_from_directory("mlx-community/Fuzz-4bit", models_dir / MODEL_ID))
        server = start_server(
            work / "models",
            work / "server.log",
            "--no-default-model",
            "--default-max-tokens",
            str(MOST_TOKENS),
            env=hub_env(hub.endpoint, work / "hf-cache"),
        )
        try:
            yield server.http_url
        finally:
            server.stop()


def _small_limits(body: dict) -> dict:
    """`body` with every token limit (top level or in Ollama's options) at most MOST_TOKENS."""
    steered = dict(body)
    if isinstance(steered.get("options"), dict):
        steered["options"] = dict(steered["options"])
    for holder in (steered, steered.get("options")):
        if not isinstance(holder, dict):
            continue
        for name in TOKEN_LIMITS:
            value = holder.get(name)
            if isinstance(value, int) and not isinstance(value, bool) and value > MOST_TOKENS:
                holder[name] = MOST_TOKENS
    return steered


@schema.parametrize()
@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,  # the same cases every run: a failure here is reproducible
)
def test_no_5xx_and_every_answer_as_documented(case, fuzzed_server: str) -> None:
    if case.operation.path == "/osaurus/v1/system/stats":
        case.query = _few_samples(case.query)
    began = time.monotonic()
    case.call_and_validate(
        base_url=fuzzed_server,
        checks=[
            not_a_server_error,
            status_code_conformance,
            content_type_conformance,
            response_schema_conformance,
        ],
        timeout=60,
    )
    # A server that stops answering is a failure too (the fuzzer once killed the engine thread).
    assert time.monotonic() - began < 30, case.operation.label


def _few_samples(query: Any) -> dict:
    """The stats stream runs until its client goes: a few quick samples, then its end."""
    query = dict(query) if isinstance(query, dict) else {}
    count, interval = _number(query.get("count")), _number(query.get("interval_seconds"))
    if count is None or count > 2:
        query["count"] = 2
    if interval is not None and interval > 0.5:
        query["interval_seconds"] = 0.5
    return query


def _number(value: Any) -> float | None:
    """A query value as the server will read it (numbers come as text too), if it is one."""
    try:
        return float(value) if not isinstance(value, bool) else None
    except (TypeError, ValueError):
        return None


def test_the_fuzzed_document_is_the_one_served(fuzzed_server: str) -> None:
    assert httpx.get(f"{fuzzed_server}/openapi.json").json() == DOCUMENT
