"""The engine: the one thread that owns MLX, the models it has loaded, and the work queue.

MLX is not safe to drive from many threads, and its calls block; so every MLX call runs on this
thread (a one-worker ThreadPoolExecutor: one thread, first in first out), and asyncio code only
awaits results. Generation events cross back to the event loop through a per-request asyncio
queue filled with `loop.call_soon_threadsafe`. Requests run one at a time in
arrival order; continuous batching replaces `_generate` with a scheduler step (later issue) without
changing the async interface below.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import AsyncGenerator, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from osaurus.chat.template import TRANSCRIPT_STOPS
from osaurus.engine.generation import generate_events
from osaurus.engine.loaded_model import LoadedModel, load_model
from osaurus.engine.request import Finished, GenerationEvent, GenerationRequest, Started
from osaurus.errors import ContextLengthExceeded, InternalError, InvalidArgument, OsaurusError
from osaurus.models.registry import ModelRegistry, describe

log = logging.getLogger(__name__)
T = TypeVar("T")


def _deliver(loop: asyncio.AbstractEventLoop, fn: Callable[..., Any], *args: Any) -> None:
    """Hand a result to the event loop; a loop that has closed (shutdown) just drops it."""
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(fn, *args)


class Engine:
    def __init__(self, registry: ModelRegistry, default_max_tokens: int = 2048):
        self.registry = registry
        self.default_max_tokens = default_max_tokens
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="osaurus-engine")
        self._models: dict[str, LoadedModel] = {}
        self._models_lock = threading.Lock()

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run `fn(*args)` on the engine thread and await its result."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def shutdown(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)

    # -- models ----------------------------------------------------------------------------

    def loaded_ids(self) -> list[str]:
        with self._models_lock:
            return list(self._models)

    def is_loaded(self, model_id: str) -> bool:
        with self._models_lock:
            return model_id in self._models

    def _ensure_loaded(self, model_id: str) -> LoadedModel:
        with self._models_lock:  # a loaded model is served without reading the disk
            loaded = self._models.get(model_id.strip().lower())
        if loaded is not None:
            return loaded
        resolved, path = self.registry.resolve(model_id)
        with self._models_lock:
            if resolved in self._models:
                return self._models[resolved]
        info = describe(resolved, path)
        log.info("loading model %s from %s", info.id, info.path)
        lm = load_model(info)
        log.info("loaded %s in %.1fs", info.id, lm.load_seconds)
        with self._models_lock:
            self._models[resolved] = lm
        return lm

    def _unload(self, model_id: str) -> bool:
        import mlx.core as mx

        with self._models_lock:
            was_loaded = self._models.pop(model_id, None) is not None
        if was_loaded:
            mx.clear_cache()  # the model's arrays are freed with the last reference; drop the cache
        return was_loaded

    async def load(self, model_id: str) -> LoadedModel:
        return await self.call(self._ensure_loaded, model_id)

    async def unload(self, model_id: str) -> bool:
        resolved, _ = self.registry.resolve(model_id)
        return await self.call(self._unload, resolved)

    async def delete(self, model_id: str) -> int:
        """Unload (on the engine thread, so no generation is using it) and remove from disk."""
        resolved, _ = self.registry.resolve(model_id)

        def unload_and_delete() -> int:
            self._unload(resolved)
            return self.registry.delete(resolved)

        return await self.call(unload_and_delete)

    # -- requests --------------------------------------------------------------------------

    async def count_tokens(self, request: GenerationRequest) -> tuple[int, int]:
        def count() -> tuple[int, int]:
            lm = self._ensure_loaded(request.model)
            tokens, _ = lm.prompt_tokens(request)
            return len(tokens), lm.context_length

        return await self.call(count)

    async def generate(self, request: GenerationRequest) -> AsyncGenerator[GenerationEvent, None]:
        """Stream a request's events. Closing the iterator (or cancelling its task) cancels the
        request: it leaves the engine at the next decode step."""
        loop = asyncio.get_running_loop()
        events: asyncio.Queue[GenerationEvent | BaseException] = asyncio.Queue()
        cancelled = threading.Event()

        def emit(event: GenerationEvent | BaseException) -> None:
            _deliver(loop, events.put_nowait, event)

        self._executor.submit(self._generate, request, emit, cancelled)
        try:
            while True:
                event = await events.get()
                if isinstance(event, BaseException):
                    raise event
                yield event
                if isinstance(event, Finished):
                    return
        finally:
            cancelled.set()

    def _generate(
        self,
        request: GenerationRequest,
        emit: Callable[[GenerationEvent | BaseException], None],
        cancelled: threading.Event,
    ) -> None:
        if cancelled.is_set():  # cancelled while waiting in the queue
            return
        try:
            lm = self._ensure_loaded(request.model)
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
            max_tokens = request.max_tokens or self.default_max_tokens
            if context:
                max_tokens = min(max_tokens, context - len(prompt))
            emit(Started(model=lm.info.id, prompt_tokens=len(prompt)))
            stops = list(request.stop)
            if rendered is not None and rendered.used_fallback:
                stops += TRANSCRIPT_STOPS
            for event in generate_events(
                lm, prompt, request.sampling, max_tokens, stops, cancelled
            ):
                emit(event)
                if isinstance(event, Finished):
                    _log_finished(event)
        except OsaurusError as exc:
            emit(exc)
        except Exception as exc:
            log.exception("generation failed")
            emit(InternalError(f"generation failed: {exc}"))


def _log_finished(event: Finished) -> None:
    t, u = event.timings, event.usage
    log.info(
        "%s: %s, %d prompt + %d completion tokens, first token %.2fs, %.1f tokens/s",
        event.model,
        event.finish_reason,
        u.prompt_tokens,
        u.completion_tokens,
        t.time_to_first_token,
        t.generation_tokens_per_second,
    )
