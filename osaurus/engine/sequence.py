"""One request inside the batch: turns its sampled tokens into events.

The batch generator (mlx-lm) hands every sequence one token per decode step and says when it hit
an end-of-turn token or max_tokens. What is ours is what a server needs on top: incremental
detokenization, stop strings that never leak (held back until they can't be a stop string),
cancellation, and usage and timings per request.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from osaurus.chat.reasoning import REASONING, ReasoningSplitter
from osaurus.chat.stopping import StopStringFilter
from osaurus.chat.tool_stream import AutoCallStream, CallDelta, Piece
from osaurus.engine.kv_store import Lease
from osaurus.engine.request import (
    Finished,
    GenerationEvent,
    GenerationRequest,
    ReasoningChunk,
    TextChunk,
    Timings,
    TokenLogprob,
    ToolCallChunk,
    Usage,
)
from osaurus.engine.sampling import LogitsProcessor, Sampler

Emit = Callable[[GenerationEvent | BaseException], None]


@dataclass(eq=False)
class Sequence:
    request: GenerationRequest
    model_id: str
    prompt: list[int]
    max_tokens: int
    stops: list[str]
    detokenizer: Any  # mlx-lm's streaming detokenizer, one per sequence
    emit: Emit
    cancelled: threading.Event
    received_at: float  # time.perf_counter() when the request arrived
    # One for the request's whole life, in the batch and alone: a seeded one's draws go on.
    sampler: Sampler
    load_seconds: float = 0.0  # of which spent loading the model
    lease: Lease | None = None
    constraint: LogitsProcessor | None = None  # constrained decoding (response_format, tools)
    tool_calls: AutoCallStream | None = None  # when the request has tools
    reasoning: ReasoningSplitter | None = None  # when the model thinks between markers
    uid: int | None = None  # the batch generator's id
    generated: int = 0
    first_token_at: float | None = None
    done: bool = False
    token_text: Callable[[int], str] | None = None  # for logprobs: a token id's text
    _pending_ids: list[int] = field(default_factory=list)  # tokens whose text is held back
    _pending_logprobs: list[TokenLogprob] = field(default_factory=list)  # theirs, when asked

    def __post_init__(self) -> None:
        self._stop_filter = StopStringFilter(self.stops)
        self.detokenizer.reset()

    @property
    def cached_tokens(self) -> int:
        return self.lease.reused if self.lease else 0

    def on_token(self, token: int, end: str | None, logprobs: Any = None) -> bool:
        """Take the token sampled for this sequence. `end` is the batch generator's finish
        reason: "stop" (an end-of-turn token, not shown) or "length" (this was the last);
        `logprobs`, the distribution it was sampled from (an mx.array over the vocabulary).
        Returns True when the sequence is finished (a Finished event has been emitted)."""
        if self.first_token_at is None:
            self.first_token_at = time.perf_counter()
        if end == "stop":
            self._flush()
            return self.finish("stop")
        self.generated += 1
        self._pending_ids.append(token)
        if self.request.logprobs is not None and logprobs is not None:
            self._pending_logprobs.append(self._logprob(token, logprobs))
        self.detokenizer.add_token(token)
        self._send(self._stop_filter.feed(self.detokenizer.last_segment))
        if self._stop_filter.stopped:
            return self.finish("stop")
        if end == "length":
            self._flush()
            return self.finish("length")
        return False

    def _emit_text(self, text: str) -> None:
        self.emit(TextChunk(text, self._pending_ids, self._pending_logprobs))
        self._pending_ids, self._pending_logprobs = [], []

    def _logprob(self, token: int, logprobs: Any) -> TokenLogprob:
        """The token's logprob and the top alternatives, read on the engine thread (only for
        requests that ask: the vector stays on the device otherwise)."""
        import mlx.core as mx

        text = self.token_text or str
        top: list[tuple[int, str, float]] = []
        k = min(self.request.logprobs or 0, logprobs.shape[-1])
        if k:
            ids = mx.argpartition(-logprobs, kth=k - 1)[:k]
            found: list[int] = ids.tolist()  # type: ignore[assignment]  # mlx: any nesting
            values: list[float] = logprobs[ids].tolist()
            pairs = sorted(zip(found, values, strict=True), key=lambda p: -p[1])
            top = [(i, text(i), v) for i, v in pairs]
        return TokenLogprob(token, text(token), float(logprobs[token].item()), top)

    def _send(self, text: str, force: bool = False) -> None:
        if self.reasoning is None:
            return self._send_content(text, force)
        parts = self.reasoning.feed(text) + (self.reasoning.flush() if force else [])
        for kind, piece in parts:
            if kind == REASONING:
                self.emit(ReasoningChunk(piece))
                self._pending_ids, self._pending_logprobs = [], []  # these go with content
            else:
                self._send_content(piece)
        if force:
            self._send_content("", force=True)

    def _send_content(self, text: str, force: bool = False) -> None:
        if self.tool_calls is not None:
            self._send_pieces(self.tool_calls.feed(text) if text else [])
        elif text or (force and self._pending_ids):
            self._emit_text(text)

    def _send_pieces(self, pieces: list[Piece]) -> None:
        """Content and tool-call pieces from the tool-call stream (token ids go with text)."""
        for piece in pieces:
            if isinstance(piece, CallDelta):
                self.emit(ToolCallChunk(piece.index, piece.id, piece.name, piece.arguments))
            else:
                self._emit_text(piece)

    def _flush(self) -> None:
        """Send the text held back for a stop string that never completed, and any bytes the
        detokenizer still holds."""
        self.detokenizer.finalize()
        tail = self._stop_filter.feed(self.detokenizer.last_segment) + self._stop_filter.flush()
        self._send(tail, force=True)

    def _matched_stop(self) -> str:
        """The client's stop string that ended the reply (not the server's own transcript
        stops, which guard against templates that fell back to plain text)."""
        matched = self._stop_filter.matched
        return matched if matched is not None and matched in self.request.stop else ""

    def finish(self, reason: str) -> bool:
        if self.done:
            return True
        self.done = True
        if self.tool_calls is not None and reason != "cancelled":
            self._send_pieces(self.tool_calls.finish())
            if self.tool_calls.calls and reason == "stop":
                reason = "tool_calls"
        end = time.perf_counter()
        first = self.first_token_at or end
        generated = self.generated
        prefilled = len(self.prompt) - self.cached_tokens
        self.emit(
            Finished(
                finish_reason=reason,
                usage=Usage(
                    prompt_tokens=len(self.prompt),
                    completion_tokens=generated,
                    cached_tokens=self.cached_tokens,
                ),
                timings=Timings(
                    time_to_first_token=first - self.received_at,
                    prompt_tokens_per_second=prefilled / max(first - self.received_at, 1e-9),
                    generation_tokens_per_second=(
                        (generated - 1) / (end - first) if generated > 1 else 0.0
                    ),
                    total_seconds=end - self.received_at,
                    load_seconds=self.load_seconds,
                ),
                model=self.model_id,
                stop_sequence=self._matched_stop(),
            )
        )
        return True

    def fail(self, error: BaseException) -> None:
        if not self.done:
            self.done = True
            self.emit(error)
