"""Translate Messages: Anthropic request -> GenerateRequest, Generate events -> Anthropic's
message (content blocks, stop_reason, usage) or its stream of events."""

from __future__ import annotations

import json
import uuid
from typing import Any

from osaurus.v1 import inference_pb2 as pb
from rest_bridge.anthropic.protocol import (
    CountTokensRequest,
    ImageBlock,
    Message,
    MessagesRequest,
    TextBlock,
    ToolResultBlock,
    ToolUseBlock,
)
from rest_bridge.errors import BridgeError
from rest_bridge.generation import (
    GeneratedToolCall,
    GenerationResult,
    add_tool,
    sampling,
    set_thinking,
)

_TOOL_CHOICE_MODES = {
    "auto": pb.TOOL_CHOICE_MODE_AUTO,
    "any": pb.TOOL_CHOICE_MODE_REQUIRED,
    "none": pb.TOOL_CHOICE_MODE_NONE,
}
TEXT_ONLY = "osaurus serves text models: image and document blocks are not supported"


def _text(content: str | list[Any], where: str) -> str:
    if isinstance(content, str):
        return content
    parts = []
    for block in content:
        if isinstance(block, ImageBlock):
            raise BridgeError(TEXT_ONLY, field=where)
        if isinstance(block, TextBlock):
            parts.append(block.text)
    return "".join(parts)


def _messages(i: int, m: Message) -> list[pb.ChatMessage]:
    """One Anthropic message -> the contract's: tool results become tool messages, tool_use
    blocks the assistant's calls; earlier thinking is not sent back."""
    where = f"messages[{i}].content"
    if isinstance(m.content, str):
        role = pb.ROLE_USER if m.role == "user" else pb.ROLE_ASSISTANT
        return [pb.ChatMessage(role=role, content=m.content)]
    if m.role == "assistant":
        calls = [
            pb.ToolCall(id=b.id, name=b.name, arguments=json.dumps(b.input))
            for b in m.content
            if isinstance(b, ToolUseBlock)
        ]
        return [
            pb.ChatMessage(
                role=pb.ROLE_ASSISTANT, content=_text(m.content, where), tool_calls=calls
            )
        ]
    out = [
        pb.ChatMessage(
            role=pb.ROLE_TOOL, content=_text(b.content, where), tool_call_id=b.tool_use_id
        )
        for b in m.content
        if isinstance(b, ToolResultBlock)
    ]
    text = _text(m.content, where)
    if text or not out:
        out.append(pb.ChatMessage(role=pb.ROLE_USER, content=text))
    return out


def chat(body: CountTokensRequest) -> pb.Chat:
    messages = []
    if body.system:
        system = (
            body.system if isinstance(body.system, str) else "".join(b.text for b in body.system)
        )
        messages.append(pb.ChatMessage(role=pb.ROLE_SYSTEM, content=system))
    for i, m in enumerate(body.messages):
        messages.extend(_messages(i, m))
    return pb.Chat(messages=messages)


def to_generate_request(body: MessagesRequest) -> pb.GenerateRequest:
    request = pb.GenerateRequest(
        model=body.model,
        chat=chat(body),
        max_tokens=body.max_tokens,
        stop=body.stop_sequences or [],
        sampling=sampling(temperature=body.temperature, top_p=body.top_p, top_k=body.top_k),
    )
    for tool in body.tools or []:
        add_tool(request, tool.name, tool.description, tool.input_schema)
    choice = body.tool_choice
    if choice is not None:
        if choice.type == "tool":
            if not choice.name:
                raise BridgeError(
                    "tool_choice.name is required with type tool", field="tool_choice.name"
                )
            request.tool_choice.function_name = choice.name
        else:
            request.tool_choice.mode = _TOOL_CHOICE_MODES[choice.type]
        if choice.disable_parallel_tool_use:
            request.parallel_tool_calls = False
    # Anthropic's models think only when asked to, so a reasoning model does so too.
    set_thinking(request, body.thinking is not None and body.thinking.type == "enabled")
    return request


def stop_reason(done: pb.GenerationDone) -> tuple[str, str | None]:
    """Anthropic's stop_reason and stop_sequence for how the reply ended."""
    if done.finish_reason == pb.FINISH_REASON_TOOL_CALLS:
        return "tool_use", None
    if done.finish_reason == pb.FINISH_REASON_LENGTH:
        return "max_tokens", None
    if done.stop_sequence:
        return "stop_sequence", done.stop_sequence
    return "end_turn", None


def usage(done: pb.GenerationDone) -> dict[str, int]:
    u = done.usage
    return {
        "input_tokens": u.prompt_tokens - u.cached_tokens,
        "cache_read_input_tokens": u.cached_tokens,
        "output_tokens": u.completion_tokens,
    }


def tool_use_block(call: GeneratedToolCall) -> dict[str, Any]:
    return {"type": "tool_use", "id": call.id, "name": call.name, "input": call.parsed_arguments()}


def new_message_id() -> str:
    return f"msg_{uuid.uuid4().hex}"


def message(
    message_id: str, model: str, result: GenerationResult, thinking: bool
) -> dict[str, Any]:
    content: list[dict[str, Any]] = []
    if thinking and result.reasoning:
        content.append({"type": "thinking", "thinking": result.reasoning, "signature": ""})
    if result.text:
        content.append({"type": "text", "text": result.text})
    content.extend(tool_use_block(c) for c in result.tool_calls)
    reason, sequence = stop_reason(result.done)
    return {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": reason,
        "stop_sequence": sequence,
        "usage": usage(result.done),
    }


class StreamWriter:
    """Generate events -> Anthropic's event sequence: message_start, then per content block
    content_block_start / _delta... / _stop, then message_delta and message_stop."""

    def __init__(self, message_id: str, model: str, prompt_tokens: int, thinking: bool):
        self.thinking = thinking
        self.index = -1
        self.open: str | None = None  # the kind of the block being written
        self.start = {
            "type": "message_start",
            "message": {
                "id": message_id,
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": [],
                "stop_reason": None,
                "stop_sequence": None,
                "usage": {"input_tokens": prompt_tokens, "output_tokens": 0},
            },
        }

    def _begin(self, kind: str, block: dict[str, Any]) -> list[dict[str, Any]]:
        events = self._end()
        self.index += 1
        self.open = kind
        events.append({"type": "content_block_start", "index": self.index, "content_block": block})
        return events

    def _end(self) -> list[dict[str, Any]]:
        if self.open is None:
            return []
        self.open = None
        return [{"type": "content_block_stop", "index": self.index}]

    def _delta(self, delta: dict[str, Any]) -> dict[str, Any]:
        return {"type": "content_block_delta", "index": self.index, "delta": delta}

    def feed(self, event: pb.GenerateResponse) -> list[dict[str, Any]]:
        if event.HasField("delta") and event.delta.text:
            events = (
                [] if self.open == "text" else self._begin("text", {"type": "text", "text": ""})
            )
            return [*events, self._delta({"type": "text_delta", "text": event.delta.text})]
        if event.HasField("reasoning") and event.reasoning.text and self.thinking:
            events = []
            if self.open != "thinking":
                events = self._begin(
                    "thinking", {"type": "thinking", "thinking": "", "signature": ""}
                )
            return [
                *events,
                self._delta({"type": "thinking_delta", "thinking": event.reasoning.text}),
            ]
        if event.HasField("tool_call"):
            call = event.tool_call
            events = []
            if call.id:
                block = {"type": "tool_use", "id": call.id, "name": call.name, "input": {}}
                events = self._begin("tool_use", block)
            if call.arguments:
                events.append(
                    self._delta({"type": "input_json_delta", "partial_json": call.arguments})
                )
            return events
        if event.HasField("done"):
            reason, sequence = stop_reason(event.done)
            return [
                *self._end(),
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": reason, "stop_sequence": sequence},
                    "usage": {"output_tokens": event.done.usage.completion_tokens},
                },
                {"type": "message_stop"},
            ]
        return []
