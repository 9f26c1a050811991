"""Translate chat completions: OpenAI request -> GenerateRequest, Generate stream -> OpenAI JSON."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from osaurus.durations import parse_duration
from osaurus.v1 import inference_pb2 as pb
from rest_bridge.generation import GeneratedToolCall, GenerationResult, add_tool, set_thinking
from rest_bridge.openai.protocol import ChatCompletionRequest, usage_json

_ROLES = {
    "system": pb.ROLE_SYSTEM,
    "developer": pb.ROLE_SYSTEM,  # OpenAI's newer name for system instructions
    "user": pb.ROLE_USER,
    "assistant": pb.ROLE_ASSISTANT,
    "tool": pb.ROLE_TOOL,
}
_TOOL_CHOICE_MODES = {
    "auto": pb.TOOL_CHOICE_MODE_AUTO,
    "none": pb.TOOL_CHOICE_MODE_NONE,
    "required": pb.TOOL_CHOICE_MODE_REQUIRED,
}
FINISH_REASONS = {
    pb.FINISH_REASON_STOP: "stop",
    pb.FINISH_REASON_LENGTH: "length",
    pb.FINISH_REASON_CANCELLED: "stop",
    pb.FINISH_REASON_TOOL_CALLS: "tool_calls",
}


def to_generate_request(body: ChatCompletionRequest, session_id: str | None) -> pb.GenerateRequest:
    request = pb.GenerateRequest(
        model=body.model,
        chat=pb.Chat(
            messages=[
                pb.ChatMessage(
                    role=_ROLES[m.role],
                    content=m.text(),
                    name=m.name or "",
                    tool_calls=[
                        pb.ToolCall(id=c.id, name=c.function.name, arguments=c.function.arguments)
                        for c in m.tool_calls or []
                    ],
                    tool_call_id=m.tool_call_id or "",
                )
                for m in body.messages
            ]
        ),
        sampling=body.sampling(),
        stop=body.stop_list(),
        session_id=body.session_id or session_id or "",
        ignore_eos=body.ignore_eos,
        speculative=body.speculative,
    )
    for tool in body.tools or []:
        add_tool(request, tool.function.name, tool.function.description, tool.function.parameters)
    if body.keep_alive is not None:
        request.keep_alive_seconds = parse_duration(body.keep_alive)
    if body.logprobs:
        request.top_logprobs = body.top_logprobs or 0
    set_thinking(request, body.reasoning_effort)
    if body.parallel_tool_calls is not None:
        request.parallel_tool_calls = body.parallel_tool_calls
    if isinstance(body.tool_choice, str):
        request.tool_choice.mode = _TOOL_CHOICE_MODES[body.tool_choice]
    elif body.tool_choice is not None:
        request.tool_choice.function_name = body.tool_choice.function.name
    fmt = body.response_format
    if fmt is not None and fmt.type == "json_object":
        request.response_format.json_object.SetInParent()
    elif fmt is not None and fmt.type == "json_schema" and fmt.json_schema is not None:
        spec = fmt.json_schema
        request.response_format.json_schema.name = spec.name
        request.response_format.json_schema.schema = json.dumps(spec.schema_)
        request.response_format.json_schema.strict = bool(spec.strict)
    max_tokens = (
        body.max_completion_tokens if body.max_completion_tokens is not None else body.max_tokens
    )
    if max_tokens is not None:
        request.max_tokens = max_tokens
    return request


class CompletionIds:
    """The id, creation time and model (the server's canonical id) every chunk repeats."""

    def __init__(self, model: str, prefix: str = "chatcmpl"):
        self.id = f"{prefix}-{uuid.uuid4().hex}"
        self.created = int(time.time())
        self.model = model

    def envelope(self, obj: str) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": obj,
            "created": self.created,
            "model": self.model,
            "system_fingerprint": "osaurus",
        }


def _logprob_entry(token: str, logprob: float) -> dict[str, Any]:
    return {"token": token, "logprob": logprob, "bytes": list(token.encode())}


def logprobs_json(logprobs: list[pb.TokenLogprob] | None) -> dict[str, Any] | None:
    """Chat completions' `logprobs`: per token, its logprob, bytes and top alternatives."""
    if logprobs is None:
        return None
    content = [
        {
            **_logprob_entry(lp.token, lp.logprob),
            "top_logprobs": [_logprob_entry(t.token, t.logprob) for t in lp.top_logprobs],
        }
        for lp in logprobs
    ]
    return {"content": content, "refusal": None}


def chunk(
    ids: CompletionIds,
    delta: dict[str, Any],
    finish_reason: str | None = None,
    with_usage_field: bool = False,
    logprobs: list[pb.TokenLogprob] | None = None,
) -> dict[str, Any]:
    out = ids.envelope("chat.completion.chunk")
    out["choices"] = [
        {
            "index": 0,
            "delta": delta,
            "logprobs": logprobs_json(logprobs),
            "finish_reason": finish_reason,
        }
    ]
    if with_usage_field:
        out["usage"] = None  # OpenAI sends null here when the final usage chunk will follow
    return out


def usage_chunk(ids: CompletionIds, done: pb.GenerationDone) -> dict[str, Any]:
    out = ids.envelope("chat.completion.chunk")
    out["choices"] = []
    out["usage"] = done_usage(done)
    return out


def done_usage(done: pb.GenerationDone) -> dict[str, Any]:
    u = done.usage
    return usage_json(u.prompt_tokens, u.completion_tokens, u.cached_tokens)


def tool_call_delta(delta: pb.ToolCallDelta) -> dict[str, Any]:
    """OpenAI's streamed call piece: the first carries id, type and name; later ones only
    argument text."""
    out: dict[str, Any] = {"index": delta.index}
    if delta.id:
        out["id"] = delta.id
        out["type"] = "function"
        out["function"] = {"name": delta.name, "arguments": delta.arguments}
    else:
        out["function"] = {"arguments": delta.arguments}
    return out


def tool_call_json(call: GeneratedToolCall) -> dict[str, Any]:
    function = {"name": call.name, "arguments": call.arguments}
    return {"id": call.id, "type": "function", "function": function}


def completion(
    ids: CompletionIds, result: GenerationResult, with_logprobs: bool = False
) -> dict[str, Any]:
    out = ids.envelope("chat.completion")
    message: dict[str, Any] = {"role": "assistant", "content": result.text, "refusal": None}
    if result.reasoning:  # the field reasoning servers (vLLM, DeepSeek's API) use
        message["reasoning_content"] = result.reasoning
    if result.tool_calls:
        message["tool_calls"] = [tool_call_json(c) for c in result.tool_calls]
        message["content"] = result.text or None  # OpenAI: null when the answer is only calls
    out["choices"] = [
        {
            "index": 0,
            "message": message,
            "logprobs": logprobs_json(result.logprobs if with_logprobs else None),
            "finish_reason": FINISH_REASONS.get(result.done.finish_reason, "stop"),
        }
    ]
    out["usage"] = done_usage(result.done)
    return out
