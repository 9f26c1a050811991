"""Translate the Responses API: input items -> the contract's chat, the Generate stream ->
output items (reasoning, message, function calls), as one response object or as the API's
events, each with its sequence_number."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from osaurus.v1 import inference_pb2 as pb
from rest_bridge.errors import BridgeError
from rest_bridge.generation import GenerationResult, add_tool, sampling, set_thinking
from rest_bridge.openai.chat import logprobs_json
from rest_bridge.openai.responses_protocol import (
    ContentPart,
    FunctionCallItem,
    FunctionCallOutputItem,
    MessageItem,
    ResponsesRequest,
)

_ROLES = {
    "user": pb.ROLE_USER,
    "system": pb.ROLE_SYSTEM,
    "developer": pb.ROLE_SYSTEM,
    "assistant": pb.ROLE_ASSISTANT,
}
_MODES = {
    "auto": pb.TOOL_CHOICE_MODE_AUTO,
    "none": pb.TOOL_CHOICE_MODE_NONE,
    "required": pb.TOOL_CHOICE_MODE_REQUIRED,
}


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


def _text(content: str | list[ContentPart], where: str) -> str:
    if isinstance(content, str):
        return content
    for part in content:
        if part.type in ("input_image", "input_file"):
            raise BridgeError(
                "osaurus serves text models: images and files are not supported", field=where
            )
    return "".join(part.text for part in content)


def input_messages(body: ResponsesRequest) -> list[pb.ChatMessage]:
    """The request's own input (not the instructions, which apply to this response only)."""
    if isinstance(body.input, str):
        return [pb.ChatMessage(role=pb.ROLE_USER, content=body.input)]
    messages: list[pb.ChatMessage] = []
    for i, item in enumerate(body.input):
        if isinstance(item, MessageItem):
            content = _text(item.content, f"input[{i}].content")
            messages.append(pb.ChatMessage(role=_ROLES[item.role], content=content))
        elif isinstance(item, FunctionCallItem):
            call = pb.ToolCall(id=item.call_id, name=item.name, arguments=item.arguments)
            last = messages[-1] if messages else None
            if last is not None and last.role == pb.ROLE_ASSISTANT and not last.content:
                last.tool_calls.append(call)  # calls of one turn travel together
            else:
                messages.append(pb.ChatMessage(role=pb.ROLE_ASSISTANT, tool_calls=[call]))
        elif isinstance(item, FunctionCallOutputItem):
            messages.append(
                pb.ChatMessage(role=pb.ROLE_TOOL, content=item.output, tool_call_id=item.call_id)
            )
    return messages


def to_generate_request(
    body: ResponsesRequest, history: list[pb.ChatMessage], session_id: str
) -> pb.GenerateRequest:
    system = (
        [pb.ChatMessage(role=pb.ROLE_SYSTEM, content=body.instructions)]
        if body.instructions
        else []
    )
    request = pb.GenerateRequest(
        model=body.model,
        chat=pb.Chat(messages=[*system, *history, *input_messages(body)]),
        session_id=session_id,
        sampling=sampling(temperature=body.temperature, top_p=body.top_p),
    )
    if body.max_output_tokens is not None:
        request.max_tokens = body.max_output_tokens
    for tool in body.tools or []:
        add_tool(request, tool.name, tool.description, tool.parameters)
    if isinstance(body.tool_choice, str):
        request.tool_choice.mode = _MODES[body.tool_choice]
    elif body.tool_choice is not None:
        request.tool_choice.function_name = body.tool_choice.name
    if body.parallel_tool_calls is not None:
        request.parallel_tool_calls = body.parallel_tool_calls
    set_thinking(request, body.reasoning.effort if body.reasoning else None)
    if body.wants_logprobs():
        request.top_logprobs = body.top_logprobs or 0
    fmt = body.text.format if body.text else None
    if fmt is not None and fmt.type == "json_object":
        request.response_format.json_object.SetInParent()
    elif fmt is not None and fmt.type == "json_schema":
        spec = fmt.json_schema()
        request.response_format.json_schema.name = spec.name
        request.response_format.json_schema.schema = json.dumps(spec.schema_)
    return request


def reply_message(output: list[dict[str, Any]]) -> pb.ChatMessage:
    """The assistant's turn, from a response's output items, as the next turn's history holds
    it (its text and its calls; reasoning is not sent back)."""
    text = "".join(
        part["text"]
        for item in output
        if item["type"] == "message"
        for part in item["content"]
        if part["type"] == "output_text"
    )
    calls = [
        pb.ToolCall(id=item["call_id"], name=item["name"], arguments=item["arguments"])
        for item in output
        if item["type"] == "function_call"
    ]
    return pb.ChatMessage(role=pb.ROLE_ASSISTANT, content=text, tool_calls=calls)


def _text_part(text: str, logprobs: list[dict[str, Any]]) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": logprobs}


def _message_item(
    item_id: str, text: str, status: str = "completed", logprobs: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    content = [_text_part(text, logprobs or [])] if status == "completed" else []
    return {
        "type": "message",
        "id": item_id,
        "status": status,
        "role": "assistant",
        "content": content,
    }


def _call_item(
    item_id: str, call_id: str, name: str, arguments: str, status: str = "completed"
) -> dict[str, Any]:
    return {
        "type": "function_call",
        "id": item_id,
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
        "status": status,
    }


def _reasoning_item(item_id: str, text: str) -> dict[str, Any]:
    return {
        "type": "reasoning",
        "id": item_id,
        "summary": [],
        "content": [{"type": "reasoning_text", "text": text}],
    }


def token_logprobs(logprobs: list[pb.TokenLogprob]) -> list[dict[str, Any]]:
    """The Responses API's logprobs are chat completions' per-token entries."""
    return (logprobs_json(logprobs) or {}).get("content", [])


def output_items(result: GenerationResult) -> list[dict[str, Any]]:
    items = []
    if result.reasoning:
        items.append(_reasoning_item(new_id("rs"), result.reasoning))
    if result.text or not result.tool_calls:
        logprobs = token_logprobs(result.logprobs)
        items.append(_message_item(new_id("msg"), result.text, logprobs=logprobs))
    items.extend(_call_item(new_id("fc"), c.id, c.name, c.arguments) for c in result.tool_calls)
    return items


def usage(done: pb.GenerationDone) -> dict[str, Any]:
    u = done.usage
    return {
        "input_tokens": u.prompt_tokens,
        "input_tokens_details": {"cached_tokens": u.cached_tokens},
        "output_tokens": u.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": u.prompt_tokens + u.completion_tokens,
    }


def response_object(
    response_id: str,
    body: ResponsesRequest,
    model: str,
    status: str,
    output: list[dict[str, Any]],
    done: pb.GenerationDone | None = None,
) -> dict[str, Any]:
    incomplete = done is not None and done.finish_reason == pb.FINISH_REASON_LENGTH
    return {
        "id": response_id,
        "object": "response",
        "created_at": int(time.time()),
        "status": "incomplete" if incomplete else status,
        "incomplete_details": {"reason": "max_output_tokens"} if incomplete else None,
        "error": None,
        "model": model,
        "output": output,
        "instructions": body.instructions,
        "previous_response_id": body.previous_response_id,
        "tools": [t.model_dump(by_alias=True, exclude_none=True) for t in body.tools or []],
        "tool_choice": body.tool_choice
        if isinstance(body.tool_choice, str) or body.tool_choice is None
        else body.tool_choice.model_dump(),
        "parallel_tool_calls": body.parallel_tool_calls
        if body.parallel_tool_calls is not None
        else True,
        "temperature": body.temperature,
        "top_p": body.top_p,
        "max_output_tokens": body.max_output_tokens,
        "top_logprobs": body.top_logprobs,
        "store": body.store,
        "metadata": body.metadata or {},
        "text": {
            "format": (
                body.text.format.model_dump(by_alias=True, exclude_none=True)
                if body.text and body.text.format
                else {"type": "text"}
            )
        },
        "usage": usage(done) if done is not None else None,
    }


class ResponsesStreamWriter:
    """Generate events -> the Responses API's events, in the order the API sends them."""

    def __init__(self, response_id: str, body: ResponsesRequest, model: str):
        self.response_id, self.body, self.model = response_id, body, model
        self.sequence = 0
        self.output: list[dict[str, Any]] = []  # finished items
        self.open: dict[str, Any] | None = None  # the item being written
        self.text = ""
        self.logprobs: list[dict[str, Any]] = []  # the open message's, when asked
        self.final: dict[str, Any] | None = None  # the completed response, once done

    def _event(self, kind: str, **fields: Any) -> dict[str, Any]:
        event = {"type": kind, "sequence_number": self.sequence, **fields}
        self.sequence += 1
        return event

    def start(self) -> list[dict[str, Any]]:
        shell = response_object(self.response_id, self.body, self.model, "in_progress", [])
        return [
            self._event("response.created", response=shell),
            self._event("response.in_progress", response=shell),
        ]

    def _index(self) -> int:
        return len(self.output)

    def _close(self) -> list[dict[str, Any]]:
        item, self.open = self.open, None
        if item is None:
            return []
        i = self._index()
        events = []
        if item["type"] == "message":
            part = _text_part(self.text, self.logprobs)
            events += [
                self._event(
                    "response.output_text.done",
                    item_id=item["id"],
                    output_index=i,
                    content_index=0,
                    text=self.text,
                    logprobs=self.logprobs,
                ),
                self._event(
                    "response.content_part.done",
                    item_id=item["id"],
                    output_index=i,
                    content_index=0,
                    part=part,
                ),
            ]
            item = _message_item(item["id"], self.text, logprobs=self.logprobs)
        elif item["type"] == "function_call":
            events.append(
                self._event(
                    "response.function_call_arguments.done",
                    item_id=item["id"],
                    output_index=i,
                    arguments=item["arguments"],
                )
            )
            item = {**item, "status": "completed"}
        elif item["type"] == "reasoning":
            events.append(
                self._event(
                    "response.reasoning_text.done",
                    item_id=item["id"],
                    output_index=i,
                    content_index=0,
                    text=item["content"][0]["text"],
                )
            )
        events.append(self._event("response.output_item.done", output_index=i, item=item))
        self.output.append(item)
        return events

    def _open(self, item: dict[str, Any]) -> list[dict[str, Any]]:
        events = self._close()
        self.open = item
        events.append(
            self._event("response.output_item.added", output_index=self._index(), item=item)
        )
        if item["type"] == "message":
            self.text, self.logprobs = "", []
            part = _text_part("", [])
            events.append(
                self._event(
                    "response.content_part.added",
                    item_id=item["id"],
                    output_index=self._index(),
                    content_index=0,
                    part=part,
                )
            )
        return events

    def feed(self, event: pb.GenerateResponse) -> list[dict[str, Any]]:
        if event.HasField("delta") and event.delta.text:
            events = (
                []
                if self.open and self.open["type"] == "message"
                else self._open(_message_item(new_id("msg"), "", "in_progress"))
            )
            self.text += event.delta.text
            logprobs = token_logprobs(list(event.delta.logprobs))
            self.logprobs += logprobs
            assert self.open is not None
            return [
                *events,
                self._event(
                    "response.output_text.delta",
                    item_id=self.open["id"],
                    output_index=self._index(),
                    content_index=0,
                    delta=event.delta.text,
                    logprobs=logprobs,
                ),
            ]
        if event.HasField("reasoning") and event.reasoning.text:
            events = (
                []
                if self.open and self.open["type"] == "reasoning"
                else self._open(_reasoning_item(new_id("rs"), ""))
            )
            assert self.open is not None
            self.open["content"][0]["text"] += event.reasoning.text
            return [
                *events,
                self._event(
                    "response.reasoning_text.delta",
                    item_id=self.open["id"],
                    output_index=self._index(),
                    content_index=0,
                    delta=event.reasoning.text,
                ),
            ]
        if event.HasField("tool_call"):
            call = event.tool_call
            events = []
            if call.id:
                events = self._open(_call_item(new_id("fc"), call.id, call.name, "", "in_progress"))
            assert self.open is not None
            self.open["arguments"] += call.arguments
            if call.arguments:
                events.append(
                    self._event(
                        "response.function_call_arguments.delta",
                        item_id=self.open["id"],
                        output_index=self._index(),
                        delta=call.arguments,
                    )
                )
            return events
        if event.HasField("done"):
            events = self._close()
            if not self.output:  # an empty reply is still one message
                events += (
                    self._open(_message_item(new_id("msg"), "", "in_progress")) + self._close()
                )
            final = response_object(
                self.response_id, self.body, self.model, "completed", self.output, event.done
            )
            self.final = final
            return [*events, self._event("response.completed", response=final)]
        return []
