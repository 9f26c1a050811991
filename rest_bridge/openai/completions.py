"""Translate /v1/completions: a raw prompt (no chat template) -> GenerateRequest, and the
Generate events -> OpenAI's text_completion objects, with the legacy logprobs shape."""

from __future__ import annotations

from typing import Any

from osaurus.v1 import inference_pb2 as pb
from rest_bridge.openai.chat import FINISH_REASONS, CompletionIds, done_usage
from rest_bridge.openai.protocol import CompletionRequest


def to_generate_request(body: CompletionRequest, prompt: str | list[int]) -> pb.GenerateRequest:
    request = pb.GenerateRequest(model=body.model, stop=body.stop_list(), sampling=body.sampling())
    if isinstance(prompt, str):
        request.prompt = prompt
    else:
        request.prompt_tokens.ids.extend(prompt)
    if body.max_tokens is not None:
        request.max_tokens = body.max_tokens
    if body.logprobs is not None:
        request.top_logprobs = body.logprobs
    return request


def legacy_logprobs(logprobs: list[pb.TokenLogprob], offset: int) -> dict[str, Any]:
    """The completions API's shape: parallel lists, `top_logprobs` as {token: logprob}, and
    each token's character offset in the choice's text (`offset`: where the reply begins)."""
    offsets = []
    for lp in logprobs:
        offsets.append(offset)
        offset += len(lp.token)
    return {
        "tokens": [lp.token for lp in logprobs],
        "token_logprobs": [lp.logprob for lp in logprobs],
        "top_logprobs": [{t.token: t.logprob for t in lp.top_logprobs} for lp in logprobs],
        "text_offset": offsets,
    }


def choice(
    index: int,
    text: str,
    finish: pb.GenerationDone | None,
    logprobs: list[pb.TokenLogprob] | None,
    offset: int = 0,
) -> dict[str, Any]:
    return {
        "text": text,
        "index": index,
        "logprobs": legacy_logprobs(logprobs, offset) if logprobs is not None else None,
        "finish_reason": FINISH_REASONS.get(finish.finish_reason, "stop") if finish else None,
    }


def completion_object(ids: CompletionIds, choices: list[dict[str, Any]]) -> dict[str, Any]:
    out = ids.envelope("text_completion")
    out["choices"] = choices
    return out


def usage_of(dones: list[pb.GenerationDone]) -> dict[str, Any]:
    usages = [done_usage(d) for d in dones]
    total = {key: sum(u[key] for u in usages) for key in ("prompt_tokens", "completion_tokens")}
    cached = sum(u["prompt_tokens_details"]["cached_tokens"] for u in usages)
    return {
        **total,
        "total_tokens": total["prompt_tokens"] + total["completion_tokens"],
        "prompt_tokens_details": {"cached_tokens": cached},
    }
