"""Continuous batching for one loaded model, over mlx-lm's BatchGenerator.

mlx-lm does the batching itself: sequences join between decode steps, newcomers' prompts are
prefilled in chunks of `prefill_step` tokens interleaved with the running streams' decode steps,
and each sequence keeps its own sampler, logits processors and max_tokens. What is ours: taking
caches from the KV store at admission and giving them back at the end, removing cancelled and
stop-string-finished sequences at the next step, and turning tokens into events (`Sequence`).
Runs on the engine thread only.
"""

from __future__ import annotations

import mlx.core as mx
from mlx_lm.generate import BatchGenerator, StopSequences

from osaurus.engine.kv_store import KVCacheStore
from osaurus.engine.loaded_model import LoadedModel
from osaurus.engine.request import Started
from osaurus.engine.sampling import make_request_processors, make_request_sampler
from osaurus.engine.sequence import Sequence
from osaurus.errors import OsaurusError


def default_prefill_step() -> int:
    """Prompt tokens per prefill chunk. Running streams wait for a newcomer's chunk, so on the
    CPU (float32 prefill ~140 tokens/s on our 2-core test machine) chunks are small; GPUs want
    big ones."""
    return 2048 if mx.default_device() == mx.gpu else 128


class ModelScheduler:
    def __init__(
        self,
        lm: LoadedModel,
        store: KVCacheStore,
        max_batch_size: int,
        prefill_step: int | None = None,
    ):
        self.lm = lm
        self.store = store
        self.max_batch_size = max_batch_size
        self.prefill_step = prefill_step or default_prefill_step()
        self._sequences: dict[int, Sequence] = {}
        self._generator = self._new_generator()

    def _new_generator(self) -> BatchGenerator:
        return BatchGenerator(
            self.lm.model,
            stop_tokens=[[t] for t in sorted(self.lm.stop_token_ids)],
            completion_batch_size=self.max_batch_size,
            prefill_batch_size=min(self.max_batch_size, 8),
            prefill_step_size=self.prefill_step,
            # mlx_lm.server does the same: the stream of the thread that runs the steps.
            stream=mx.default_stream(mx.default_device()),
        )

    def __len__(self) -> int:
        return len(self._sequences)

    def add(self, seq: Sequence) -> None:
        """Admit a sequence: check out a cache for its prompt and queue it for prefill."""
        seq.lease = self.store.checkout(self.lm.info.id, seq.prompt, seq.request.session_id)
        reused = seq.lease.reused
        try:
            (seq.uid,) = self._generator.insert(
                [seq.prompt[reused:]],
                max_tokens=[seq.max_tokens],
                caches=[seq.lease.cache],
                all_tokens=[seq.prompt[:reused]],
                samplers=[make_request_sampler(seq.request.sampling)],
                logits_processors=[self._processors(seq)],
                # ignore_eos: no stop tokens for this sequence (max_tokens and stop strings end it).
                stop_sequences=[StopSequences(None)] if seq.request.ignore_eos else None,
            )
        except Exception:
            self.store.checkin(seq.lease, [], None)  # give the session back
            raise
        seq.lease.cache = None  # the generator owns it now
        self._sequences[seq.uid] = seq
        seq.emit(Started(self.lm.info.id, len(seq.prompt), cached_tokens=reused))

    @staticmethod
    def _processors(seq: Sequence) -> list:
        """The request's sampling processors, then its grammar mask (response_format)."""
        processors = make_request_processors(seq.request.sampling)
        return [*processors, seq.constraint] if seq.constraint else processors

    def step(self) -> None:
        """Drop cancelled sequences, then run one decode step (plus one prefill chunk)."""
        cancelled = [uid for uid, seq in self._sequences.items() if seq.cancelled.is_set()]
        if cancelled:
            self._remove(cancelled, "cancelled")
        if not self._sequences:
            return
        _, responses = self._generator.next()  # the engine fails the batch if this raises
        finished = []
        for r in responses:
            seq = self._sequences.get(r.uid)
            if seq is None:
                continue
            if r.finish_reason is not None:  # the generator dropped it and hands back its cache
                seq.on_token(r.token, r.finish_reason)
                del self._sequences[r.uid]
                self.store.checkin(seq.lease, list(r.all_tokens), r.prompt_cache)
            elif seq.on_token(r.token, None):  # a stop string
                finished.append(r.uid)
        if finished:
            self._remove(finished, None)

    def _remove(self, uids: list[int], reason: str | None) -> None:
        caches = self._generator.remove(uids, return_prompt_caches=True)
        for uid in uids:
            seq = self._sequences.pop(uid)
            if reason is not None:
                seq.finish(reason)
            cache, tokens = caches.get(uid, (None, []))
            self.store.checkin(seq.lease, list(tokens), cache)

    def fail_all(self, error: OsaurusError) -> None:
        """Fail every sequence (a broken step, the model unloaded) and start a fresh batch: a
        failed step leaves the generator in an unknown state."""
        for seq in self._sequences.values():
            seq.fail(error)
            self.store.checkin(seq.lease, [], None)
        self._sequences.clear()
        self._generator.close()
        self._generator = self._new_generator()

    def close(self) -> None:
        self._generator.close()
