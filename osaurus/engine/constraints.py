"""Constrained decoding: output that must match a JSON schema, enforced token by token.

We use llguidance (the library behind Guidance, also used by llama.cpp and vLLM): it compiles a
JSON schema to a grammar and, at each step, computes which tokens of the vocabulary may come next
in native code, with no Python loop over the vocabulary. It was picked over xgrammar and
outlines-core because it takes a Hugging Face fast tokenizer as is, validates a schema up front
with an error message we can show the user, and needs no GPU (its MLX helper is Metal-only, so
the mask is applied here with `mx.where`, which works on every MLX device).

The processor plugs into mlx-lm's batch generator as a per-request logits processor. When the
grammar is complete it allows only the end-of-sequence token, so generation stops there.
"""

from __future__ import annotations

import json
from typing import Any

import llguidance
import llguidance.hf
import mlx.core as mx
import numpy as np
from llguidance import LLMatcher

from osaurus.chat.tools import Tool, ToolChoice
from osaurus.engine.request import ResponseFormat
from osaurus.errors import InternalError, InvalidArgument


def json_grammar(response_format: ResponseFormat) -> str:
    schema = response_format.schema if response_format.type == "json_schema" else None
    try:
        return LLMatcher.grammar_from_json_schema(schema or {"type": "object"})
    except ValueError as exc:
        raise InvalidArgument(
            f"response_format.json_schema.schema is not a JSON schema: {exc}",
            field="response_format",
        ) from exc


def strict_arguments(schema: dict[str, Any]) -> dict[str, Any]:
    """A forced call's arguments take only the declared properties unless the schema says
    otherwise (OpenAI's strict mode makes the same demand): left open, a small model keeps
    inventing keys until max_tokens."""
    schema = dict(schema or {"type": "object", "properties": {}})
    if schema.get("type") == "object" and "additionalProperties" not in schema:
        schema["additionalProperties"] = False
    return schema


def tool_call_grammar(tools: list[Tool], choice: ToolChoice, parallel: bool = False) -> str:
    """A Lark grammar whose sentences are `{"name": "NAME", "arguments": ARGS}` with NAME a
    declared tool (the named one, for a named choice) and ARGS valid against its schema; with
    `parallel`, one or more such calls, one per line. The wrapper is fixed text, so the streaming
    reader can send the header as soon as the name is complete (tool_stream)."""
    chosen = [t for t in tools if choice.mode != "function" or t.name == choice.name]
    rules = []
    for i, tool in enumerate(chosen):
        header = json.dumps(f'{{"name": {json.dumps(tool.name)}, "arguments": ')
        schema = strict_arguments(tool.parameters)
        rules.append(f'call_{i}: {header} args_{i} "}}"\nargs_{i}: %json {json.dumps(schema)}')
    one = "one: " + " | ".join(f"call_{i}" for i in range(len(chosen)))
    start = 'start: one ("\\n" one)*' if parallel else "start: one"
    try:
        return LLMatcher.grammar_from_lark("\n".join([start, one, *rules]))
    except ValueError as exc:
        raise InvalidArgument(
            f"tools: cannot enforce the tool schemas: {exc}", field="tools"
        ) from exc


def check_tool_schemas(tools: list[Tool], tokenizer: llguidance.LLTokenizer) -> None:
    """A tool whose parameters are not an enforceable JSON schema is a bad request."""
    error = LLMatcher.validate_grammar(tool_call_grammar(tools, ToolChoice("required")), tokenizer)
    if error:
        raise InvalidArgument(f"tools: a parameters schema is invalid: {error}", field="tools")


def compile_tool_constraint(
    tools: list[Tool], choice: ToolChoice, parallel: bool, tokenizer: llguidance.LLTokenizer
) -> GrammarConstraint:
    grammar = tool_call_grammar(tools, choice, parallel and choice.mode == "required")
    return GrammarConstraint(LLMatcher(tokenizer, grammar, log_level=0), tokenizer.vocab_size)


def make_llg_tokenizer(hf_tokenizer: Any, eos_token_ids: set[int]) -> llguidance.LLTokenizer:
    """llguidance's view of a model's vocabulary (~0.3 s; built once per loaded model)."""
    eos = sorted(eos_token_ids) or None
    return llguidance.hf.from_tokenizer(hf_tokenizer, eos_token=eos)


def compile_constraint(
    response_format: ResponseFormat, tokenizer: llguidance.LLTokenizer
) -> GrammarConstraint:
    """Check the grammar against the vocabulary now, so a bad schema is a clear 400."""
    grammar = json_grammar(response_format)
    error = LLMatcher.validate_grammar(grammar, tokenizer)
    if error:
        raise InvalidArgument(
            f"response_format: the JSON schema cannot be enforced: {error}",
            field="response_format",
        )
    return GrammarConstraint(LLMatcher(tokenizer, grammar, log_level=0), tokenizer.vocab_size)


class GrammarConstraint:
    """A logits processor (mlx-lm's `(tokens, logits) -> logits`) that masks every token the
    grammar does not allow next. `tokens` ends with the token just fed to the model: the last
    prompt token on the first call, then each sampled token, which the matcher consumes."""

    def __init__(self, matcher: LLMatcher, vocab_size: int):
        self.matcher = matcher
        self.vocab_size = vocab_size
        self._started = False
        self._words = (vocab_size + 31) // 32

    def __call__(self, tokens: mx.array, logits: mx.array) -> mx.array:
        if self._started:
            self.matcher.consume_token(int(tokens[-1].item()))  # type: ignore[arg-type]
        self._started = True
        if self.matcher.is_error():
            raise InternalError(f"constrained decoding failed: {self.matcher.get_error()}")
        allowed = self._allowed()
        vocab = logits.shape[-1]
        if vocab > allowed.shape[0]:  # padded model vocabularies: the padding is never allowed
            allowed = np.concatenate([allowed, np.zeros(vocab - allowed.shape[0], dtype=bool)])
        return mx.where(mx.array(allowed[:vocab]), logits, -mx.inf)

    def _allowed(self) -> np.ndarray:
        bits = np.frombuffer(self.matcher.compute_bitmask(), dtype=np.uint8)
        return np.unpackbits(bits, bitorder="little").astype(bool)[: self.vocab_size]
