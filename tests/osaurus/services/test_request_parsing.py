"""Properties of the core's request parsing (services/inference.request_from_proto), over requests
hypothesis makes up: any text, any role number, arguments and schemas that may not be JSON.

A request either becomes a GenerationRequest that holds what was sent, or is refused with
InvalidArgument naming a field of the request; nothing else may escape (it would be INTERNAL).
"""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from osaurus.errors import InvalidArgument
from osaurus.services.inference import request_from_proto
from osaurus.v1 import inference_pb2 as pb

_text = st.text(max_size=30)
_json_or_not = st.one_of(
    _text,
    st.dictionaries(st.text(max_size=6), st.integers() | _text, max_size=3).map(json.dumps),
    st.lists(st.integers(), max_size=3).map(json.dumps),
)
_call = st.builds(pb.ToolCall, id=_text, name=_text, arguments=_json_or_not)
_message = st.builds(
    pb.ChatMessage,
    role=st.integers(0, 6),  # the enum's values, and some it does not have
    content=_text,
    name=_text,
    tool_calls=st.lists(_call, max_size=2),
    tool_call_id=_text,
)
_tool = st.builds(pb.Tool, name=_text, description=_text, parameters=_json_or_not)
_format = st.one_of(
    st.builds(pb.ResponseFormat, json_object=st.just(pb.JsonObjectFormat())),
    st.builds(
        pb.ResponseFormat,
        json_schema=st.builds(pb.JsonSchemaFormat, name=_text, schema=_json_or_not),
    ),
    st.just(pb.ResponseFormat()),
)


@st.composite
def requests(draw: st.DrawFn) -> pb.GenerateRequest:
    request = pb.GenerateRequest(
        model=draw(_text),
        stop=draw(st.lists(_text, max_size=3)),
        tools=draw(st.lists(_tool, max_size=3)),
        reasoning_effort=draw(st.sampled_from(["", "low", "high", "extreme"])),
    )
    which = draw(st.sampled_from(["chat", "prompt", "none"]))
    if which == "chat":
        request.chat.messages.extend(draw(st.lists(_message, max_size=4)))
    elif which == "prompt":
        request.prompt = draw(_text)
    if draw(st.booleans()):
        request.max_tokens = draw(st.integers(0, 2**32 - 1))
    if draw(st.booleans()):
        request.response_format.CopyFrom(draw(_format))
    return request


@settings(max_examples=400, deadline=None)
@given(request=requests())
def test_a_request_is_parsed_whole_or_refused_naming_its_field(request) -> None:
    try:
        parsed = request_from_proto(request)
    except InvalidArgument as exc:
        assert exc.field, exc.message
        top = exc.field.split(".")[0].split("[")[0]
        assert top in pb.GenerateRequest.DESCRIPTOR.fields_by_name or top == "input", exc.field
        return
    assert parsed.model == request.model and parsed.stop == list(request.stop)
    if request.HasField("chat"):
        assert [m.content for m in parsed.messages] == [m.content for m in request.chat.messages]
        calls = [len(m.tool_calls) for m in request.chat.messages]
        assert [len(m.tool_calls) for m in parsed.messages] == calls
    assert [t.name for t in parsed.tools] == [t.name for t in request.tools]
