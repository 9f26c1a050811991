"""How one generation request becomes a Sequence, on the engine thread: its prompt's tokens
(checked against the context), its length, the grammar its reply must follow and how tool
calls are read from it, its stop strings, detokenizer and reasoning split."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from osaurus.chat.reasoning import ReasoningSplitter
from osaurus.chat.template import TRANSCRIPT_STOPS
from osaurus.chat.tool_stream import AutoCallStream
from osaurus.chat.tools import validate_tool_request
from osaurus.engine.constraints import (
    GrammarConstraint,
    check_tool_schemas,
    compile_constraint,
    compile_tool_constraint,
)
from osaurus.engine.loaded_model import LoadedModel
from osaurus.engine.request import GenerationEvent, GenerationRequest
from osaurus.engine.sampling import make_request_sampler
from osaurus.engine.sequence import Sequence
from osaurus.errors import ContextLengthExceeded, InvalidArgument


def build_sequence(
    request: GenerationRequest,
    lm: LoadedModel,
    default_max_tokens: int,
    emit: Callable[[GenerationEvent | BaseException], None],
    cancelled: threading.Event,
    received_at: float,
    load_seconds: float = 0.0,
) -> Sequence:
    """`received_at`: time.perf_counter() when the request arrived; `load_seconds`, of the
    time since, what it waited for its model to load."""
    prompt, rendered = lm.prompt_tokens(request)
    field = "messages" if request.messages is not None else "prompt"
    if not prompt:
        raise InvalidArgument("the prompt is empty", field=field)
    context = lm.context_length
    if context and len(prompt) >= context:
        raise ContextLengthExceeded(
            f"the prompt is {len(prompt)} tokens, but model {lm.info.id!r} has a context "
            f"length of {context} tokens (prompt and reply together)",
            field=field,
        )
    max_tokens = request.max_tokens or default_max_tokens
    if context:
        max_tokens = min(max_tokens, context - len(prompt))
    constraint, tool_calls = output_rules(request, lm)
    stops = list(request.stop)
    if rendered is not None and rendered.used_fallback:
        stops += TRANSCRIPT_STOPS
    return Sequence(
        request=request,
        model_id=lm.info.id,
        prompt=prompt,
        max_tokens=max_tokens,
        stops=stops,
        detokenizer=_detokenizer(lm, raw=request.messages is None),
        emit=emit,
        cancelled=cancelled,
        received_at=received_at,
        sampler=make_request_sampler(request.sampling),
        load_seconds=load_seconds,
        constraint=constraint,
        tool_calls=tool_calls,
        reasoning=_reasoning_splitter(lm, request, rendered),
        token_text=_token_text(lm) if request.logprobs is not None else None,
    )


def output_rules(
    request: GenerationRequest, lm: LoadedModel
) -> tuple[GrammarConstraint | None, AutoCallStream | None]:
    """The grammar the reply must follow (response_format, forced tool calls) and how tool
    calls are read out of it."""
    tools, choice = request.tools, request.tool_choice
    validate_tool_request(tools, choice, request.messages or [])
    if tools:  # every declared schema must compile, whatever the choice
        check_tool_schemas(tools, lm.grammar_tokenizer)
    if tools and choice.forced:  # the grammar writes calls in the format the reader streams
        tool_constraint = compile_tool_constraint(
            tools, choice, request.parallel_tool_calls, lm.grammar_tokenizer
        )
        return tool_constraint, AutoCallStream(tools)
    constraint: GrammarConstraint | None = None
    if request.response_format is not None:
        constraint = compile_constraint(request.response_format, lm.grammar_tokenizer)
    if tools and choice.mode == "auto":
        tokenizer = lm.tokenizer
        parser = tokenizer.tool_parser if tokenizer.has_tool_calling else None
        marker = tokenizer.tool_call_start if parser else None
        end = tokenizer.tool_call_end if parser else None
        return constraint, AutoCallStream(tools, marker, parser, end)
    return constraint, None


def _detokenizer(lm: LoadedModel, raw: bool) -> Any:
    """mlx-lm's streaming detokenizer for one sequence. A chat reply starts without the space
    its first token carries (mlx-lm trims it); a raw prompt's continuation keeps it, as the
    completions API has it ("The capital of France is" + " Paris")."""
    detokenizer = lm.tokenizer.detokenizer
    if raw:
        if hasattr(detokenizer, "trim_space"):  # SentencePiece's
            detokenizer.trim_space = False
        if hasattr(detokenizer, "_maybe_trim_space"):  # byte-level BPE's: no switch to turn
            detokenizer._maybe_trim_space = lambda text: text
    return detokenizer


def _token_text(lm: LoadedModel) -> Callable[[int], str]:
    tokenizer = lm.tokenizer
    return lambda token: tokenizer.decode([token])


def _reasoning_splitter(
    lm: LoadedModel, request: GenerationRequest, rendered: Any
) -> ReasoningSplitter | None:
    """For models that think between markers (mlx-lm knows them); the reply starts inside the
    thinking block when the prompt opened one it did not close (templates with thinking on)."""
    tokenizer = lm.tokenizer
    if not getattr(tokenizer, "has_thinking", False):
        return None
    prompt = rendered.text if rendered is not None else request.prompt or ""
    inside = prompt.rfind(tokenizer.think_start) > prompt.rfind(tokenizer.think_end)
    return ReasoningSplitter(tokenizer.think_start, tokenizer.think_end, inside)
