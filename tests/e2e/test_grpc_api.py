"""Every RPC of the gRPC contract, and each error code, against a real server and model."""

from __future__ import annotations

import platform
from pathlib import Path

import gguf
import grpc
import numpy as np
import pytest
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)
from grpc_status import rpc_status
from helpers import kept_tokens, wait_until_idle

from osaurus.v1 import inference_pb2 as ipb
from osaurus.v1 import (
    inference_pb2_grpc,
    model_pb2,
    model_pb2_grpc,
    system_pb2,
    system_pb2_grpc,
)

QUESTION = "Name the capital of France."
LONG_REQUEST = "Write the numbers from 1 to 1000, one per line."  # runs to max_tokens
LONG_TOKENS = 1000


@pytest.fixture(scope="module")
def inference(channel) -> inference_pb2_grpc.InferenceServiceStub:
    return inference_pb2_grpc.InferenceServiceStub(channel)


@pytest.fixture(scope="module")
def models(channel) -> model_pb2_grpc.ModelServiceStub:
    return model_pb2_grpc.ModelServiceStub(channel)


@pytest.fixture(scope="module")
def system(channel) -> system_pb2_grpc.SystemServiceStub:
    return system_pb2_grpc.SystemServiceStub(channel)


def chat(text: str, model: str, **kwargs) -> ipb.GenerateRequest:
    messages = [ipb.ChatMessage(role=ipb.ROLE_USER, content=text)]
    return ipb.GenerateRequest(model=model, chat=ipb.Chat(messages=messages), **kwargs)


def run(stub, request, timeout: float = 120) -> tuple[str, ipb.GenerationDone, list[int]]:
    text, ids, done = [], [], None
    for event in stub.Generate(request, timeout=timeout):
        if event.HasField("delta"):
            text.append(event.delta.text)
            ids.extend(event.delta.token_ids)
        else:
            done = event.done
    assert done is not None
    return "".join(text), done, ids


def expected_simd() -> str:
    """The instruction set `make setup` builds the kernels for on this CPU (-march=native)."""
    if platform.machine() not in ("x86_64", "AMD64"):
        return "portable"
    flags = set(Path("/proc/cpuinfo").read_text().split())
    vnni = {"avx512f", "avx512bw", "avx512vl", "avx512_vnni"} <= flags
    return "avx512-vnni" if vnni else "avx2"


def reason_of(error: grpc.RpcError) -> tuple[str, dict]:
    status = rpc_status.from_call(error)
    info = error_details_pb2.ErrorInfo()
    assert status is not None and status.details[0].Unpack(info)
    return info.reason, dict(info.metadata)


def test_stream_starts_with_the_canonical_model_and_prompt_size(inference, model_id) -> None:
    events = list(inference.Generate(chat(QUESTION, model_id.upper(), max_tokens=2), timeout=60))
    assert events[0].HasField("started")
    assert events[0].started.model == model_id
    assert events[0].started.prompt_tokens == events[-1].done.usage.prompt_tokens
    assert sum(e.HasField("started") for e in events) == 1


def test_generate_chat_greedy(inference, model_id) -> None:
    text, done, ids = run(
        inference, chat(QUESTION, model_id, sampling=ipb.SamplingParams(temperature=0))
    )
    assert text == "The capital of France is Paris."
    assert done.finish_reason == ipb.FINISH_REASON_STOP and done.model == model_id
    assert done.usage.completion_tokens == len(ids) == 7
    assert done.usage.total_tokens == done.usage.prompt_tokens + 7
    t = done.timings
    assert 0 < t.time_to_first_token_seconds < t.total_seconds
    assert t.prompt_tokens_per_second > 0 and t.generation_tokens_per_second > 0


def test_generate_raw_prompt_and_count_tokens(inference, model_id) -> None:
    prompt = "1, 2, 3, 4, 5,"
    count = inference.CountTokens(ipb.CountTokensRequest(model=model_id, text=prompt))
    assert count.context_length == 8192
    text, done, _ = run(inference, ipb.GenerateRequest(model=model_id, prompt=prompt, max_tokens=4))
    assert done.usage.prompt_tokens == count.token_count
    assert done.finish_reason == ipb.FINISH_REASON_LENGTH and text.strip().startswith("6")


def test_count_tokens_of_a_chat_matches_generate_usage(inference, model_id) -> None:
    request = chat(QUESTION, model_id, max_tokens=1)
    counted = inference.CountTokens(ipb.CountTokensRequest(model=model_id, chat=request.chat))
    _, done, _ = run(inference, request)
    assert counted.token_count == done.usage.prompt_tokens


def test_sampling_parameters_are_applied(inference, model_id) -> None:
    def sample(**sampling) -> str:
        return run(
            inference,
            chat(QUESTION, model_id, max_tokens=10, sampling=ipb.SamplingParams(**sampling)),
        )[0]

    assert sample(temperature=1.2, seed=3, top_p=0.9, top_k=40, min_p=0.05) == sample(
        temperature=1.2, seed=3, top_p=0.9, top_k=40, min_p=0.05
    )
    # top_k=1 is greedy whatever the temperature.
    assert sample(temperature=1.5, top_k=1, seed=1) == sample(temperature=0)
    assert sample(temperature=0, repetition_penalty=1.3)  # accepted and runs


def test_stop_strings_on_grpc(inference, model_id) -> None:
    text, done, _ = run(inference, chat(QUESTION, model_id, stop=["France is"]))
    assert text == "The capital of " and done.finish_reason == ipb.FINISH_REASON_STOP


def test_error_codes(inference, model_id) -> None:
    with pytest.raises(grpc.RpcError) as info:
        run(inference, chat(QUESTION, "no-such-model"))
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    assert reason_of(info.value) == ("MODEL_NOT_FOUND", {"field": "model"})

    with pytest.raises(grpc.RpcError) as info:
        run(inference, ipb.GenerateRequest(model=model_id))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT

    with pytest.raises(grpc.RpcError) as info:
        run(inference, chat("word " * 9000, model_id))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert reason_of(info.value)[0] == "CONTEXT_LENGTH_EXCEEDED"
    assert "8192" in info.value.details()


# The cancel tests decide by what the server processed (the tokens its session kept), not by
# time, so that a cancel that does nothing fails however fast the machine is.


def test_cancel_stops_generation_and_frees_the_engine(inference, channel, model_id) -> None:
    request = chat(LONG_REQUEST, model_id, max_tokens=LONG_TOKENS, session_id="cancel-decode")
    call = inference.Generate(request)
    started = next(call)
    assert started.HasField("started")
    assert next(call).HasField("delta")
    call.cancel()
    assert wait_until_idle(channel, within=60)
    # Uncancelled, it would have decoded LONG_TOKENS tokens. (The session holds the prompt
    # and the tokens fed back before the cancel: none when it came right after the first.)
    generated = kept_tokens(channel, "cancel-decode") - started.started.prompt_tokens
    assert 0 <= generated < 100


def test_cancel_during_a_long_prefill_frees_the_engine(inference, channel, model_id) -> None:
    # ~3000 prompt tokens, prefilled 128 at a time; cancellation is checked between chunks.
    long_prompt = "The history of the city is long. " * 375
    request = ipb.GenerateRequest(
        model=model_id, prompt=long_prompt, max_tokens=5, session_id="cancel-prefill"
    )
    call = inference.Generate(request)
    started = next(call)
    assert started.HasField("started")  # accepted; prefill is running now
    call.cancel()
    assert wait_until_idle(channel, within=60)
    # Uncancelled, the session would hold the whole prompt and 5 more tokens.
    assert kept_tokens(channel, "cancel-prefill") < started.started.prompt_tokens


def test_deadline_stops_generation_and_frees_the_engine(inference, channel, model_id) -> None:
    request = chat(LONG_REQUEST, model_id, max_tokens=LONG_TOKENS, session_id="deadline")
    with pytest.raises(grpc.RpcError) as info:
        run(inference, request, timeout=1)
    assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert wait_until_idle(channel, within=60)
    # A second of decoding is far from LONG_TOKENS on any machine we run on (~70-150 tokens/s).
    assert 0 < kept_tokens(channel, "deadline") < LONG_TOKENS / 2


def test_list_get_load_unload(models, inference, model_id, system) -> None:
    listed = {m.id: m for m in models.ListModels(model_pb2.ListModelsRequest()).models}
    m = listed[model_id]
    assert (m.architecture, m.quantization, m.context_length) == ("llama", "4-bit (group 32)", 8192)
    assert m.size_bytes > 90_000_000 and Path(m.path).is_dir()

    assert models.UnloadModel(model_pb2.UnloadModelRequest(id=model_id)).was_loaded in (True, False)
    assert not models.GetModel(model_pb2.GetModelRequest(id=model_id)).model.loaded
    assert model_id not in system.GetStatus(system_pb2.GetStatusRequest()).loaded_models
    assert not models.UnloadModel(model_pb2.UnloadModelRequest(id=model_id)).was_loaded

    assert models.GetModel(model_pb2.GetModelRequest(id=model_id)).model.precision == ""
    loaded = models.LoadModel(model_pb2.LoadModelRequest(id=model_id))
    assert loaded.model.loaded and loaded.load_seconds > 0
    # On the CPU the 4-bit test model stays 4-bit and runs on osaurus' native kernel, which
    # `make setup` builds for this CPU (x86-64: AVX-512 VNNI where it has it, else AVX2).
    simd = expected_simd()
    assert loaded.model.precision == f"4-bit (osaurus {simd} kernel)"
    # What it holds is its weights as stored, not a float32 copy.
    safetensors = sum(f.stat().st_size for f in Path(m.path).glob("*.safetensors"))
    assert safetensors * 0.9 < loaded.model.memory_bytes <= 1.3 * safetensors
    status = system.GetStatus(system_pb2.GetStatusRequest())
    assert model_id in status.loaded_models
    assert status.cpu_kernel.startswith(f"osaurus native ({simd}, ")

    for rpc, request in (
        (models.GetModel, model_pb2.GetModelRequest(id="nope")),
        (models.LoadModel, model_pb2.LoadModelRequest(id="nope")),
        (models.DeleteModel, model_pb2.DeleteModelRequest(id="nope")),
    ):
        with pytest.raises(grpc.RpcError) as info:
            rpc(request)
        assert info.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as info:
        models.GetModel(model_pb2.GetModelRequest())
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_import_generate_delete_round_trip(models, inference, gguf_path, server) -> None:
    imported = models.ImportModel(
        model_pb2.ImportModelRequest(gguf_path=str(gguf_path), name="copy")
    )
    assert imported.model.id == "copy" and imported.model.quantization == "4-bit (group 32)"
    try:
        text, _, _ = run(
            inference, chat(QUESTION, "copy", sampling=ipb.SamplingParams(temperature=0))
        )
        assert "Paris" in text
        with pytest.raises(grpc.RpcError) as info:
            models.ImportModel(model_pb2.ImportModelRequest(gguf_path=str(gguf_path), name="copy"))
        assert info.value.code() == grpc.StatusCode.ALREADY_EXISTS
    finally:
        freed = models.DeleteModel(model_pb2.DeleteModelRequest(id="copy")).freed_bytes
    assert freed > 90_000_000
    assert not (server.models_dir / "copy").exists()
    assert "copy" not in [m.id for m in models.ListModels(model_pb2.ListModelsRequest()).models]


def test_import_errors(models, tmp_path) -> None:
    with pytest.raises(grpc.RpcError) as info:
        models.ImportModel(model_pb2.ImportModelRequest(gguf_path=str(tmp_path / "missing.gguf")))
    assert info.value.code() == grpc.StatusCode.NOT_FOUND

    writer = gguf.GGUFWriter(str(tmp_path / "rwkv.gguf"), "rwkv6")
    writer.add_tensor("token_embd.weight", np.zeros((2, 4), np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    with pytest.raises(grpc.RpcError) as info:
        models.ImportModel(model_pb2.ImportModelRequest(gguf_path=str(tmp_path / "rwkv.gguf")))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "rwkv6" in info.value.details() and reason_of(info.value)[0] == "UNSUPPORTED_MODEL"

    with pytest.raises(grpc.RpcError) as info:
        models.ImportModel(
            model_pb2.ImportModelRequest(gguf_path=str(tmp_path / "x.gguf"), name="Bad Name!")
        )
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_system_status_and_stats_stream(system) -> None:
    status = system.GetStatus(system_pb2.GetStatusRequest())
    assert status.version and status.device == "cpu" and status.mlx_version
    assert status.uptime_seconds > 0 and status.models_dir
    assert status.request_limit == 16 + 64 and status.kv_cache_budget_bytes > 0
    stream = system.WatchSystemStats(system_pb2.WatchSystemStatsRequest(interval_seconds=0.2))
    samples = [next(stream), next(stream)]
    stream.cancel()
    assert samples[1].timestamp > samples[0].timestamp
    assert all(
        s.memory_total_bytes > s.memory_used_bytes > 0 and s.process_rss_bytes > 0 for s in samples
    )
    with pytest.raises(grpc.RpcError) as info:
        next(system.WatchSystemStats(system_pb2.WatchSystemStatsRequest(interval_seconds=0.01)))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_stats_count_requests_and_tokens_while_generating(
    channel, system, inference, model_id
) -> None:
    before = system.GetStatus(system_pb2.GetStatusRequest()).generated_tokens
    request = ipb.GenerateRequest(
        model=model_id, prompt="Once upon a time", max_tokens=400, ignore_eos=True
    )
    call = inference.Generate(request)
    next(call)  # started: the request is in
    stream = system.WatchSystemStats(system_pb2.WatchSystemStatsRequest(interval_seconds=0.3))
    samples = [next(stream), next(stream)]
    stream.cancel()
    call.cancel()
    busy = samples[1]
    assert (busy.running_requests, busy.queued_requests) == (1, 0)
    assert busy.tokens_per_second > 0 and busy.generated_tokens > before
    assert wait_until_idle(channel, within=10)
    status = system.GetStatus(system_pb2.GetStatusRequest())
    assert (status.running_requests, status.queued_requests) == (0, 0)
    assert status.generated_tokens >= busy.generated_tokens


def test_health_reports_serving(channel) -> None:
    health = health_pb2_grpc.HealthStub(channel)
    for service in (
        "",
        "osaurus.v1.InferenceService",
        "osaurus.v1.ModelService",
        "osaurus.v1.SystemService",
        "osaurus.v1.SessionService",
    ):
        response = health.Check(health_pb2.HealthCheckRequest(service=service))
        assert response.status == health_pb2.HealthCheckResponse.SERVING


def test_reflection_lists_and_describes_services(channel) -> None:
    db = ProtoReflectionDescriptorDatabase(channel)
    services = set(db.get_services())
    assert {
        "osaurus.v1.InferenceService",
        "osaurus.v1.ModelService",
        "osaurus.v1.SystemService",
        "osaurus.v1.SessionService",
        "grpc.health.v1.Health",
    } <= services
    proto = db.FindFileContainingSymbol("osaurus.v1.InferenceService")
    assert proto.package == "osaurus.v1"
