"""The engine: the one thread that owns MLX, the models it has loaded, their batches and caches.

MLX is not safe to drive from many threads, and its calls block; so every MLX call runs on the
engine thread and asyncio code only awaits results. The thread runs a loop: take the commands
waiting (load a model, admit a request, list sessions...), then run one step of every model's
batch. Generation events cross back to the event loop through a per-request asyncio queue filled
with `loop.call_soon_threadsafe`.

Admission is bounded: at most `max_batch_size` sequences decode together per model, and at most
`max_queue` more wait; past that a request fails at once with RESOURCE_EXHAUSTED.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
import time
from collections.abc import AsyncGenerator, Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

from osaurus.engine.admission import build_sequence
from osaurus.engine.encoder import Embedded, LoadedEncoder, load_encoder
from osaurus.engine.kv_store import KVCacheStore, Session
from osaurus.engine.loaded_model import LoadedModel, load_model
from osaurus.engine.options import EngineOptions
from osaurus.engine.precision import estimate_memory
from osaurus.engine.request import Finished, GenerationEvent, GenerationRequest
from osaurus.engine.residency import Residency, ResidencyPolicy, keep_alive_seconds
from osaurus.engine.scheduler import ModelScheduler
from osaurus.errors import (
    FailedPrecondition,
    InternalError,
    InvalidArgument,
    NotFound,
    OsaurusError,
    ResourceExhausted,
    Unavailable,
)
from osaurus.metrics import ServerMetrics
from osaurus.models.details import EMBEDDING
from osaurus.models.gguf_import import import_gguf
from osaurus.models.registry import ModelInfo, ModelRegistry, describe
from osaurus.request_id import REQUEST_ID

log = logging.getLogger(__name__)
T = TypeVar("T")
_UNSET: Any = object()


def _deliver(loop: asyncio.AbstractEventLoop, fn: Callable[..., Any], *args: Any) -> None:
    """Hand a result to the event loop; a loop that has closed (shutdown) just drops it."""
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(fn, *args)


class Engine:
    def __init__(self, registry: ModelRegistry, options: EngineOptions | None = None):
        self.registry = registry
        self.options = options or EngineOptions()
        self.kv_store = KVCacheStore(self.options.kv_cache_bytes, self.options.prefix_cache)
        self._models: dict[str, LoadedModel | LoadedEncoder] = {}
        self._models_lock = threading.Lock()  # _models is read from the event loop too
        self._schedulers: dict[str, ModelScheduler] = {}  # engine thread only
        self._residency: dict[str, Residency] = {}  # keep-alive bookkeeping (engine thread)
        self._policy = ResidencyPolicy(
            self.options.model_memory_bytes, self.options.max_loaded_models
        )
        self._commands: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._outstanding = 0  # requests admitted and not finished (event loop only)
        self.generated_tokens = 0  # since start (written on the engine thread only)
        self.metrics = ServerMetrics()
        self._thread = threading.Thread(target=self._run, name="osaurus-engine", daemon=True)
        self._thread.start()

    # -- the engine thread -----------------------------------------------------------------

    def _run(self) -> None:
        while True:
            busy = any(len(s) for s in self._schedulers.values())
            for command in self._take_commands(wait=not busy, timeout=self._idle_timeout()):
                if command is None:  # shutdown
                    self._close()
                    return
                try:
                    command()  # commands answer their callers' futures, errors included
                except Exception:  # a bug in one: the thread must outlive it, or all would hang
                    log.exception("an engine command failed")
            for scheduler in list(self._schedulers.values()):
                if len(scheduler):
                    try:
                        self.generated_tokens += scheduler.step()
                    except Exception as exc:  # keep the thread alive; fail only this batch
                        log.exception("a batch step failed")
                        scheduler.fail_all(InternalError(f"generation failed: {exc}"))
            self._update_residency()

    def _take_commands(
        self, wait: bool, timeout: float | None = None
    ) -> list[Callable[[], None] | None]:
        """Every command waiting now; when idle (`wait`), block until there is one or until
        `timeout` (the next keep-alive expiry)."""
        commands = []
        try:
            commands.append(self._commands.get(block=wait, timeout=timeout if wait else None))
            while True:
                commands.append(self._commands.get_nowait())
        except queue.Empty:
            pass
        return commands

    def _idle_timeout(self) -> float | None:
        """Until the next keep-alive expiry, at most an hour (a wait too long for the platform's
        timers raises; waking once an hour costs nothing)."""
        deadline = self._policy.next_deadline(self._residency)
        return None if deadline is None else min(3600.0, max(0.0, deadline - time.monotonic()))

    def _update_residency(self) -> None:
        """Mark models busy or idle (idle time counts from the last request's end) and unload
        those idle past their keep-alive."""
        now = time.monotonic()
        for model_id, residency in self._residency.items():
            scheduler = self._schedulers.get(model_id)
            busy = bool(scheduler and len(scheduler))
            if residency.busy and not busy:
                residency.last_used = now
            residency.busy = busy
        for model_id in self._policy.expired(self._residency, now):
            log.info("unloading %s: idle past its keep-alive", model_id)
            self._unload(model_id)

    def _close(self) -> None:
        for scheduler in self._schedulers.values():
            scheduler.fail_all(Unavailable("the server is shutting down"))
            scheduler.close()
        self._schedulers.clear()

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run `fn(*args)` on the engine thread (between batch steps) and await its result."""
        future: Future[T] = Future()

        def run() -> None:
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(fn(*args))
                except BaseException as exc:
                    future.set_exception(exc)

        self._commands.put(run)
        return await asyncio.wrap_future(future)

    def shutdown(self) -> None:
        if self._thread.is_alive():
            self._commands.put(None)
            self._thread.join()

    # -- models ----------------------------------------------------------------------------

    def loaded_ids(self) -> list[str]:
        with self._models_lock:
            return list(self._models)

    def is_loaded(self, model_id: str) -> bool:
        with self._models_lock:
            return model_id in self._models

    def loaded(self, model_id: str) -> LoadedModel | LoadedEncoder | None:
        with self._models_lock:
            return self._models.get(model_id)

    def residency(self, model_id: str) -> tuple[int, float | None] | None:
        """A loaded model's memory and when it unloads if it stays idle (epoch seconds; None:
        not scheduled), or None when it is not loaded."""
        residency = self._residency.get(model_id)
        if residency is None:
            return None
        deadline = residency.expires_at()
        expires = None if deadline is None else time.time() + (deadline - time.monotonic())
        return residency.memory_bytes, expires

    def _generator(self, model_id: str) -> LoadedModel:
        """The model loaded, for generation: an embedding model cannot generate."""
        lm = self._ensure_loaded(model_id)
        if isinstance(lm, LoadedEncoder):
            raise InvalidArgument(
                f"model {lm.info.id!r} is an embedding model: it embeds (Embed, /v1/embeddings, "
                "/api/embed) and does not generate",
                field="model",
            )
        return lm

    def _ensure_loaded(self, model_id: str) -> LoadedModel | LoadedEncoder:
        with self._models_lock:  # a loaded model is served without reading the disk
            loaded = self._models.get(model_id.strip().lower())
        if loaded is not None:
            self._touch(loaded.info.id)
            return loaded
        resolved, path = self.registry.resolve(model_id)
        with self._models_lock:
            if resolved in self._models:
                return self._models[resolved]
        info = describe(resolved, path)
        estimate = estimate_memory(info, self.options.float32)
        for victim in self._policy.make_room(info.id, estimate, self._residency):
            log.info("unloading %s to make room for %s", victim, info.id)
            self._unload(victim)
        log.info("loading model %s from %s", info.id, info.path)
        lm: LoadedModel | LoadedEncoder
        if EMBEDDING in info.capabilities:
            lm = load_encoder(info)
        else:
            lm = load_model(info, self.options.float32, self.options.kv_cache_dtype)
        log.info(
            "loaded %s in %.1fs, computing in %s%s",
            info.id,
            lm.load_seconds,
            lm.precision.describe(),
            f", KV cache in {lm.kv_cache_dtype}" if isinstance(lm, LoadedModel) else "",
        )
        with self._models_lock:
            self._models[resolved] = lm
        self._residency[resolved] = Residency(lm.memory_bytes, self.options.keep_alive)
        return lm

    def _touch(self, model_id: str, keep_alive: float | None = _UNSET) -> None:
        residency = self._residency.get(model_id)
        if residency is not None:
            residency.last_used = time.monotonic()
            if keep_alive is not _UNSET:
                residency.keep_alive = keep_alive

    def _unload_idle(self, model_id: str) -> bool:
        """Unload on request (UnloadModel, DeleteModel): never from under running requests."""
        scheduler = self._schedulers.get(model_id)
        if scheduler is not None and len(scheduler):
            raise FailedPrecondition(
                f"model {model_id!r} is generating for {len(scheduler)} request(s); "
                "cancel them or retry when they finish",
                field="id",
            )
        return self._unload(model_id)

    def _unload(self, model_id: str) -> bool:
        import mlx.core as mx

        self._residency.pop(model_id, None)
        scheduler = self._schedulers.pop(model_id, None)
        if scheduler is not None:
            scheduler.fail_all(Unavailable(f"model {model_id!r} was unloaded", field="model"))
            scheduler.close()
        self.kv_store.drop_model(model_id)
        with self._models_lock:
            was_loaded = self._models.pop(model_id, None) is not None
        if was_loaded:
            mx.clear_cache()  # the model's arrays are freed with the last reference; drop the cache
        return was_loaded

    async def load(
        self, model_id: str, keep_alive: float | None = None
    ) -> LoadedModel | LoadedEncoder:
        def load_and_keep() -> LoadedModel | LoadedEncoder:
            lm = self._ensure_loaded(model_id)
            if keep_alive is not None:
                self._touch(lm.info.id, keep_alive_seconds(keep_alive, None))
            return lm

        return await self.call(load_and_keep)

    async def unload(self, model_id: str) -> bool:
        resolved, _ = self.registry.resolve(model_id)
        return await self.call(self._unload_idle, resolved)

    async def delete(self, model_id: str) -> int:
        """Unload (on the engine thread, so no generation is using it) and remove from disk."""
        resolved, _ = self.registry.resolve(model_id)

        def unload_and_delete() -> int:
            self._unload_idle(resolved)
            return self.registry.delete(resolved)

        return await self.call(unload_and_delete)

    async def import_gguf(self, gguf_path: Path, name: str | None = None) -> ModelInfo:
        """Convert a GGUF file into the models directory. The conversion runs MLX, so it runs
        on the engine thread, between batch steps."""
        models_dir = self.registry.models_dir
        path = await self.call(import_gguf, gguf_path, models_dir, name)
        return self.registry.get(path.relative_to(models_dir).as_posix().lower())

    async def embed(
        self,
        model_id: str,
        texts: list[str] | None,
        token_ids: list[list[int]] | None,
        truncate: bool = True,
        dimensions: int = 0,
        normalize: bool | None = None,
        keep_alive: float | None = None,
    ) -> tuple[str, Embedded, float]:
        """Embed on the engine thread, between batch steps: (the model's id, the vectors, the
        seconds spent loading it)."""

        def run() -> tuple[str, Embedded, float]:
            before = time.perf_counter()
            lm = self._ensure_loaded(model_id)
            load_seconds = time.perf_counter() - before if lm.loaded_at > before else 0.0
            if not isinstance(lm, LoadedEncoder):
                raise InvalidArgument(
                    f"model {lm.info.id!r} generates and does not embed: use an embedding "
                    "model (capability embedding in ListModels)",
                    field="model",
                )
            if keep_alive is not None:
                self._touch(lm.info.id, keep_alive_seconds(keep_alive, None))
            else:
                self._touch(lm.info.id)
            field = "texts" if texts is not None else "token_ids"
            inputs = lm.tokenize(texts) if texts is not None else token_ids or []
            return (
                lm.info.id,
                lm.embed(inputs, truncate, dimensions, normalize, field),
                load_seconds,
            )

        return await self.call(run)

    @property
    def in_flight(self) -> int:
        """Generation requests admitted and not finished (read on the event loop)."""
        return self._outstanding

    @property
    def request_limit(self) -> int:
        return self.options.max_batch_size + self.options.max_queue

    async def active_requests(self) -> int:
        """Sequences in the batches: decoding, prefilling or waiting for a slot. Read on the
        engine thread, so a cancelled request counts until it has really left its batch."""
        return await self.call(lambda: sum(len(s) for s in self._schedulers.values()))

    async def request_counts(self) -> tuple[int, int]:
        """(running, queued): requests in a batch slot, and those waiting for one or for their
        model to load (admitted, not finished, not running)."""
        running = await self.call(lambda: sum(s.running() for s in self._schedulers.values()))
        return running, max(self._outstanding - running, 0)

    async def kv_cache_bytes(self) -> int:
        return await self.call(lambda: self.kv_store.session_bytes + self.kv_store.prefix_bytes)

    # -- sessions --------------------------------------------------------------------------

    async def sessions(self) -> list[Session]:
        return await self.call(self.kv_store.sessions)

    async def session(self, session_id: str) -> Session:
        found = await self.call(self.kv_store.session, session_id)
        if found is None:
            raise NotFound(f"no session {session_id!r}", field="id")
        return found

    async def delete_session(self, session_id: str) -> None:
        if not await self.call(self.kv_store.delete_session, session_id):
            raise NotFound(f"no session {session_id!r}", field="id")

    # -- requests --------------------------------------------------------------------------

    async def count_tokens(self, request: GenerationRequest) -> tuple[int, int]:
        def count() -> tuple[int, int]:
            lm = self._ensure_loaded(request.model)
            if isinstance(lm, LoadedEncoder):
                tokens = (
                    lm.tokenize([request.prompt or ""])[0] if request.prompt is not None else []
                )
                if request.messages is not None:
                    raise InvalidArgument(
                        f"model {lm.info.id!r} is an embedding model: count text, not a chat",
                        field="input",
                    )
                return len(tokens), lm.context_length
            tokens, _ = lm.prompt_tokens(request)
            return len(tokens), lm.context_length

        return await self.call(count)

    async def generate(self, request: GenerationRequest) -> AsyncGenerator[GenerationEvent, None]:
        """Stream a request's events: Started, TextChunks, then Finished. Closing the iterator
        (or cancelling its task) cancels the request: it leaves the batch at the next step."""
        limit = self.request_limit
        if self._outstanding >= limit:
            busy = ResourceExhausted(
                f"the server is busy: {self._outstanding} requests are running or waiting "
                f"(limit {limit}); retry later"
            )
            self.metrics.failed(busy)
            raise busy
        received_at = time.perf_counter()
        loop = asyncio.get_running_loop()
        events: asyncio.Queue[GenerationEvent | BaseException] = asyncio.Queue()
        cancelled = threading.Event()

        def emit(event: GenerationEvent | BaseException) -> None:
            _deliver(loop, events.put_nowait, event)

        self._outstanding += 1
        request_id = REQUEST_ID.get()  # the engine thread logs its finish under it
        self._commands.put(lambda: self._admit(request, emit, cancelled, received_at, request_id))
        ended = False  # finished or failed; else the client went away (counted as cancelled)
        try:
            while True:
                event = await events.get()
                if isinstance(event, BaseException):
                    ended = True
                    if isinstance(event, OsaurusError):
                        self.metrics.failed(event)
                    raise event
                if isinstance(event, Finished):
                    ended = True
                    self.metrics.finished(event)
                yield event
                if isinstance(event, Finished):
                    return
        finally:
            cancelled.set()
            self._outstanding -= 1
            if not ended:
                self.metrics.requests.labels(request.model, "cancelled").inc()

    def _admit(
        self,
        request: GenerationRequest,
        emit: Callable[[GenerationEvent | BaseException], None],
        cancelled: threading.Event,
        received_at: float,
        request_id: str = "-",
    ) -> None:
        if cancelled.is_set():  # gone while waiting for the engine thread
            return
        try:
            before_load = time.perf_counter()
            lm = self._generator(request.model)
            load_seconds = time.perf_counter() - before_load if lm.loaded_at > before_load else 0.0
            if request.keep_alive is not None:
                self._touch(lm.info.id, keep_alive_seconds(request.keep_alive, None))
            sequence = build_sequence(
                request,
                lm,
                self.options.default_max_tokens,
                _logging_finish(emit, request_id),
                cancelled,
                received_at,
                load_seconds,
            )
            self._scheduler(lm).add(sequence)
        except OsaurusError as exc:
            emit(exc)
        except Exception as exc:
            log.exception("admitting a request failed")
            emit(InternalError(f"generation failed: {exc}"))

    def _scheduler(self, lm: LoadedModel) -> ModelScheduler:
        scheduler = self._schedulers.get(lm.info.id)
        if scheduler is None or scheduler.lm is not lm:
            scheduler = ModelScheduler(
                lm,
                self.kv_store,
                self.options.max_batch_size,
                self.options.prefill_step,
                self.options.speculative,
            )
            self._schedulers[lm.info.id] = scheduler
        return scheduler


def _logging_finish(
    emit: Callable[[GenerationEvent | BaseException], None], request_id: str = "-"
) -> Callable[[GenerationEvent | BaseException], None]:
    def emit_and_log(event: GenerationEvent | BaseException) -> None:
        if isinstance(event, Finished):
            t, u = event.timings, event.usage
            log.info(
                "%s: %s, %d prompt (%d cached) + %d completion tokens, first token %.2fs, "
                "%.1f tokens/s",
                event.model,
                event.finish_reason,
                u.prompt_tokens,
                u.cached_tokens,
                u.completion_tokens,
                t.time_to_first_token,
                t.generation_tokens_per_second,
                extra={"request_id": request_id},
            )
        emit(event)

    return emit_and_log
