"""An engine that answers by the request's model name, for servicer and bridge tests that need
the real servicers (validation, error mapping, translation) but not a model.

"missing": ModelNotFound; "long": ContextLengthExceeded; "endless": text until cancelled;
"thinker": reasoning first; "caller": a tool call; anything else: "Hello", then stop.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from osaurus.engine.request import (
    Finished,
    GenerationRequest,
    ReasoningChunk,
    Started,
    TextChunk,
    Timings,
    ToolCallChunk,
    Usage,
)
from osaurus.errors import ContextLengthExceeded, ModelNotFound


class FakeEngine:
    def __init__(self) -> None:
        self.requests: list[GenerationRequest] = []
        self.closed = asyncio.Event()

    async def generate(self, request: GenerationRequest) -> AsyncIterator:
        self.requests.append(request)
        if request.model == "missing":
            raise ModelNotFound("model 'missing' not found", field="model")
        if request.model == "long":
            raise ContextLengthExceeded("too long", field="messages")
        yield Started(request.model, 5)
        try:
            if request.model == "endless":
                while True:
                    yield TextChunk("x", [1])
                    await asyncio.sleep(0.01)
            if request.model == "thinker":
                yield ReasoningChunk("Hmm.")
            if request.model == "caller":
                yield ToolCallChunk(0, "call_1", "get_time")
                yield ToolCallChunk(0, arguments='{"tz": "UTC"}')
                yield Finished("tool_calls", Usage(5, 3), Timings(0.1, 50.0, 20.0, 0.2), "caller")
                return
            yield TextChunk("Hel", [10])
            yield TextChunk("lo", [11, 12])
            yield Finished("stop", Usage(5, 3), Timings(0.1, 50.0, 20.0, 0.2), request.model)
        finally:
            self.closed.set()

    async def count_tokens(self, request: GenerationRequest) -> tuple[int, int]:
        return 42, 8192
