"""In-process engines on the real model, and running a request on one keeping all it streamed."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from osaurus.chat.messages import Message
from osaurus.engine.engine import Engine, EngineOptions
from osaurus.engine.request import (
    Finished,
    GenerationRequest,
    SamplingParams,
    Started,
    TextChunk,
)
from osaurus.models.registry import ModelRegistry


def make_engine(models_dir: Path, **options) -> Engine:
    return Engine(ModelRegistry(models_dir), EngineOptions(**options))


@dataclass
class Output:
    text: str = ""
    token_ids: list[int] = field(default_factory=list)
    started: Started | None = None
    finished: Finished | None = None
    first_token_at: float | None = None
    finished_at: float | None = None

    @property
    def same_as(self) -> tuple:
        """What must not change between a batched and a solo run."""
        return self.text, self.token_ids, self.finished.finish_reason


async def run(engine: Engine, request: GenerationRequest) -> Output:
    out = Output()
    async for event in engine.generate(request):
        if isinstance(event, Started):
            out.started = event
        elif isinstance(event, TextChunk):
            if out.first_token_at is None:
                out.first_token_at = time.perf_counter()
            out.text += event.text
            out.token_ids += event.token_ids
        elif isinstance(event, Finished):
            out.finished = event
            out.finished_at = time.perf_counter()
    return out


def chat(model: str, *turns: str, **options) -> GenerationRequest:
    """A chat whose messages alternate user, assistant, user..."""
    roles = ("user", "assistant")
    messages = [Message(role=roles[i % 2], content=t) for i, t in enumerate(turns)]
    sampling = SamplingParams(
        **{k: options.pop(k) for k in list(options) if k in SamplingParams.__annotations__}
    )
    return GenerationRequest(model=model, messages=messages, sampling=sampling, **options)
