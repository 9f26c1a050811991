"""Translate /api/chat and /api/generate: Ollama request -> GenerateRequest, Generate events ->
Ollama's NDJSON objects (a chunk per piece, then one `done` object with counts and durations)."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

from osaurus.v1 import inference_pb2 as pb
from rest_bridge.errors import BridgeError
from rest_bridge.generation import GeneratedToolCall, add_tool, sampling, set_thinking
from rest_bridge.ollama.protocol import (
    ChatRequest,
    GenerateRequest,
    GenerationBase,
    Message,
    Options,
)

_ROLES = {
    "system": pb.ROLE_SYSTEM,
    "user": pb.ROLE_USER,
    "assistant": pb.ROLE_ASSISTANT,
    "tool": pb.ROLE_TOOL,
}
DONE_REASONS = {
    pb.FINISH_REASON_STOP: "stop",
    pb.FINISH_REASON_LENGTH: "length",
    pb.FINISH_REASON_CANCELLED: "stop",
    pb.FINISH_REASON_TOOL_CALLS: "stop",  # Ollama says stop; the calls are in the message
}
_NS = 1_000_000_000
TEXT_ONLY = "osaurus serves text models: images are not supported"


def model_id(name: str) -> str:
    """Ollama's `name:tag` -> osaurus' id: models here have no tags, so `:latest` is the id."""
    name = name.strip()
    return name.removesuffix(":latest")


def ollama_name(model: str) -> str:
    """osaurus' id -> Ollama's name, with the `:latest` tag clients expect."""
    return model if ":" in model.rsplit("/", 1)[-1] else f"{model}:latest"


def now() -> str:
    """RFC 3339 in UTC, as Ollama writes `created_at`."""
    return datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")


def _message(i: int, m: Message) -> pb.ChatMessage:
    if m.images:
        raise BridgeError(TEXT_ONLY, field=f"messages[{i}].images")
    return pb.ChatMessage(
        role=_ROLES[m.role],
        content=m.content,
        name=m.tool_name or "",
        tool_calls=[
            pb.ToolCall(
                id=f"call_{i}_{j}", name=c.function.name, arguments=json.dumps(c.function.arguments)
            )
            for j, c in enumerate(m.tool_calls or [])
        ],
    )


def _common(body: GenerationBase, request: pb.GenerateRequest) -> pb.GenerateRequest:
    """What chat and generate share: model, options, format, keep_alive."""
    request.model = model_id(body.model)
    options = body.options or Options()
    request.sampling.CopyFrom(
        sampling(
            temperature=options.temperature,
            top_p=options.top_p,
            top_k=options.top_k,
            min_p=options.min_p,
            repetition_penalty=options.repeat_penalty,
            seed=options.seed,
        )
    )
    request.stop.extend(options.stop or [])
    set_thinking(request, body.think)
    predict = options.num_predict
    if predict is not None and predict not in (-1, -2):  # -1, -2: up to the context
        if predict < 1:
            raise BridgeError(
                f"options.num_predict must be -1, -2 or at least 1, not {predict}",
                field="options.num_predict",
            )
        request.max_tokens = min(predict, 2**32 - 1)
    if body.format == "json":
        request.response_format.json_object.SetInParent()
    elif isinstance(body.format, dict):
        request.response_format.json_schema.name = "schema"
        request.response_format.json_schema.schema = json.dumps(body.format)
    keep_alive = body.keep_alive_seconds()
    if keep_alive is not None:
        request.keep_alive_seconds = keep_alive
    return request


def chat_request(body: ChatRequest) -> pb.GenerateRequest:
    request = pb.GenerateRequest(
        chat=pb.Chat(messages=[_message(i, m) for i, m in enumerate(body.messages)])
    )
    for tool in body.tools or []:
        add_tool(request, tool.function.name, tool.function.description, tool.function.parameters)
    return _common(body, request)


def generate_request(body: GenerateRequest) -> pb.GenerateRequest:
    if body.images:
        raise BridgeError(TEXT_ONLY, field="images")
    if body.template:
        raise BridgeError(
            "template is not supported: osaurus renders prompts with the model's own chat "
            "template (or none, with raw)",
            field="template",
        )
    if body.suffix:
        raise BridgeError("suffix (fill-in-the-middle) is not supported", field="suffix")
    if body.raw:
        return _common(body, pb.GenerateRequest(prompt=body.prompt))
    messages = [pb.ChatMessage(role=pb.ROLE_SYSTEM, content=body.system)] if body.system else []
    messages.append(pb.ChatMessage(role=pb.ROLE_USER, content=body.prompt))
    return _common(body, pb.GenerateRequest(chat=pb.Chat(messages=messages)))


def tool_call_json(call: GeneratedToolCall) -> dict[str, Any]:
    """Ollama's call: arguments as an object."""
    return {"function": {"name": call.name, "arguments": call.parsed_arguments()}}


def done_fields(done: pb.GenerationDone) -> dict[str, Any]:
    """The final object's counts and durations (nanoseconds), from what the server measured."""
    t, u = done.timings, done.usage
    load_ns = int(t.load_seconds * _NS)
    first_ns = int(t.time_to_first_token_seconds * _NS)  # from arrival: the load, then the prompt
    prompt_ns = max(first_ns - load_ns, 0)
    total_ns = int(t.total_seconds * _NS)
    return {
        "done": True,
        "done_reason": DONE_REASONS.get(done.finish_reason, "stop"),
        "total_duration": total_ns,
        "load_duration": load_ns,
        "prompt_eval_count": u.prompt_tokens - u.cached_tokens,
        "prompt_eval_duration": prompt_ns,
        "eval_count": u.completion_tokens,
        "eval_duration": max(total_ns - first_ns, 0),
    }
