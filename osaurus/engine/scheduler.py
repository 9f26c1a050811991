"""Continuous batching for one loaded model, over mlx-lm's BatchGenerator.

mlx-lm does the batching itself: sequences join between decode steps, newcomers' prompts are
prefilled in chunks of `prefill_step` tokens interleaved with the running streams' decode steps,
and each sequence keeps its own sampler, logits processors and max_tokens. What is ours: taking
caches from the KV store at admission and giving them back at the end, removing cancelled and
stop-string-finished sequences at the next step, and turning tokens into events (`Sequence`).
When a single sequence is decoding, it leaves the batch and decodes alone (speculative.py; a
greedy one by prompt lookup, several tokens per step) until another request arrives and it
rejoins; one that finds the model idle with a short prompt left to read starts there, with no
batch.
Runs on the engine thread only.
"""

from __future__ import annotations

import logging

import mlx.core as mx
from mlx_lm.generate import BatchGenerator, StopSequences
from mlx_lm.models.cache import KVCache, make_prompt_cache, trim_prompt_cache

from osaurus.engine.kv_store import KVCache as PromptCache
from osaurus.engine.kv_store import KVCacheStore
from osaurus.engine.loaded_model import LoadedModel
from osaurus.engine.request import Started
from osaurus.engine.sampling import make_request_processors, take_back_last_draw
from osaurus.engine.sequence import Sequence
from osaurus.engine.speculative import PromptLookupDecoder
from osaurus.errors import InternalError, OsaurusError

log = logging.getLogger(__name__)


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
        speculative: bool = True,
    ):
        self.lm = lm
        self.store = store
        self.max_batch_size = max_batch_size
        self.prefill_step = prefill_step or default_prefill_step()
        self.speculative = speculative  # the server's default; a request may say otherwise
        # Rejected drafts are trimmed from the cache: plain KV caches only (not the rotating
        # caches of sliding-window models, which cannot always be trimmed).
        self._trimmable = all(type(c) is KVCache for c in make_prompt_cache(lm.model))
        self._sequences: dict[int, Sequence] = {}
        self._solo: tuple[Sequence, PromptLookupDecoder] | None = None  # out of the batch
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
        return len(self._sequences) + (self._solo is not None)

    def add(self, seq: Sequence) -> None:
        """Admit a sequence: check out a cache for its prompt and queue it for prefill."""
        if self._solo is not None:
            self._rejoin()  # batching serves two requests better than speculation serves one
        seq.lease = self.store.checkout(self.lm.info.id, seq.prompt, seq.request.session_id)
        reused = seq.lease.reused
        try:
            if not self._start_solo(seq, seq.prompt[reused:], seq.lease.cache):
                self._insert(seq, seq.prompt[reused:], seq.prompt[:reused], seq.lease.cache)
        except Exception:
            self.store.checkin(seq.lease, [], None)  # give the session back
            raise
        seq.lease.cache = None  # the generator owns it now
        seq.emit(Started(self.lm.info.id, len(seq.prompt), cached_tokens=reused))

    def _insert(self, seq: Sequence, prompt: list[int], cached: list[int], cache) -> None:
        """Queue `prompt` for prefill on top of `cache`, which holds the KV of `cached`."""
        (seq.uid,) = self._generator.insert(
            [prompt],
            max_tokens=[seq.max_tokens - seq.generated],
            caches=[cache],
            all_tokens=[cached],
            samplers=[seq.sampler],
            logits_processors=[self._processors(seq)],
            # ignore_eos: no stop tokens for this sequence (max_tokens and stop strings end it).
            stop_sequences=[StopSequences(None)] if seq.request.ignore_eos else None,
        )
        self._sequences[seq.uid] = seq

    @staticmethod
    def _processors(seq: Sequence) -> list:
        """The request's sampling processors, then its grammar mask (response_format)."""
        processors = make_request_processors(seq.request.sampling)
        return [*processors, seq.constraint] if seq.constraint else processors

    def step(self) -> int:
        """Drop cancelled sequences, then run one decode step (plus one prefill chunk).
        Returns how many tokens it generated."""
        if self._solo is not None:
            return self._solo_step()
        cancelled = [uid for uid, seq in self._sequences.items() if seq.cancelled.is_set()]
        if cancelled:
            self._remove(cancelled, "cancelled")
        if not self._sequences:
            return 0
        _, responses = self._generator.next()  # the engine fails the batch if this raises
        finished, decoding = [], []
        for r in responses:
            seq = self._sequences.get(r.uid)
            if seq is None:
                continue
            if r.finish_reason is not None:  # the generator dropped it and hands back its cache
                seq.on_token(r.token, r.finish_reason, r.logprobs)
                del self._sequences[r.uid]
                self.store.checkin(seq.lease, list(r.all_tokens), r.prompt_cache)
            elif seq.on_token(r.token, None, r.logprobs):  # a stop string
                finished.append(r.uid)
            else:
                decoding.append(r.uid)
        if finished:
            self._remove(finished, None)
        if len(self._sequences) == 1 and decoding:
            self._go_solo(decoding[0])
        return len(responses)

    def running(self) -> int:
        """Sequences in a batch slot (the others wait in the generator's queue)."""
        return min(len(self), self.max_batch_size)

    # --- one sequence alone (speculative.py) ---

    def _decodes_alone(self, seq: Sequence) -> bool:
        """Unconstrained requests without penalties or logprobs, where a dropped pass can be
        trimmed from the cache: the decoder's output is then exactly the batch's."""
        return bool(
            self._trimmable
            and seq.constraint is None
            and seq.request.logprobs is None  # drafts verified in one pass carry none
            and not make_request_processors(seq.request.sampling)
        )

    def _decoder(
        self, seq: Sequence, cache: list, tokens: list[int], pending: int
    ) -> PromptLookupDecoder:
        """Greedy requests speculate (unless the server or the request says not to); sampled
        ones draw one token per pass with their own sampler."""
        wanted = seq.request.speculative
        greedy = not seq.request.sampling.temperature
        return PromptLookupDecoder(
            self.lm.model,
            cache,
            tokens,
            pending,
            sampler=None if greedy else seq.sampler,
            drafting=self.speculative if wanted is None else wanted,
        )

    def _start_solo(self, seq: Sequence, rest: list[int], cache: PromptCache | None) -> bool:
        """A request that finds the model idle and at most one prefill chunk of its prompt
        uncached skips the batch: it would leave it after its first token anyway, and making
        a batch of it (merging, splitting and copying its cache) took ~12 ms of the ~25 to its
        first token (a cached chat prompt, test model, in-process)."""
        if self._sequences or len(rest) > self.prefill_step or not self._decodes_alone(seq):
            return False
        if cache is None:
            cache = make_prompt_cache(self.lm.model)
        if len(rest) > 1:  # the last prompt token is the decoder's pending one
            self.lm.model(mx.array([rest[:-1]]), cache=cache)
            mx.eval([c.state for c in cache])
        self._solo = (seq, self._decoder(seq, cache, seq.prompt[:-1], seq.prompt[-1]))
        return True

    def _go_solo(self, uid: int) -> None:
        seq = self._sequences[uid]
        if not self._decodes_alone(seq):
            return
        cache, tokens = self._generator.remove([uid], return_prompt_caches=True)[uid]
        del self._sequences[uid]
        tokens = list(tokens)
        # The generator has fed the last token and computed (then dropped) the logits after
        # it, and drawn a token from them; the decoder feeds it again, as its pending token,
        # and draws that token again.
        trim_prompt_cache(cache, 1)
        take_back_last_draw(seq.sampler)
        pending = tokens.pop()
        self._solo = (seq, self._decoder(seq, cache, tokens, pending))

    def _solo_step(self) -> int:
        assert self._solo is not None  # called in solo mode only
        seq, decoder = self._solo
        if seq.cancelled.is_set():
            seq.finish("cancelled")
            self._end_solo()
            return 0
        # The step's first token is the (generated + 1)th: a pass after it only if one is wanted.
        chosen = decoder.step(ahead=seq.generated + 1 < seq.max_tokens)
        stop_ids = set() if seq.request.ignore_eos else self.lm.stop_token_ids
        for i, token in enumerate(chosen):
            end = "stop" if token in stop_ids else None
            if end is None and seq.generated + 1 >= seq.max_tokens:
                end = "length"
            if seq.on_token(token, end):
                decoder.keep_only(i + 1, len(chosen))
                self._end_solo()
                return i + 1
        return len(chosen)

    def _end_solo(self) -> None:
        assert self._solo is not None  # called in solo mode only
        seq, decoder = self._solo
        self._solo = None
        decoder.settle()
        log.debug("prompt lookup: kept %d of %d draft tokens", decoder.accepted, decoder.drafted)
        self.store.checkin(seq.lease, decoder.tokens, decoder.cache)

    def _rejoin(self) -> None:
        """Back into the batch: the pending token is the prompt that resumes the sequence."""
        assert self._solo is not None  # called in solo mode only
        seq, decoder = self._solo
        self._solo = None
        decoder.settle()
        try:
            self._insert(seq, [decoder.pending], decoder.tokens, decoder.cache)
        except Exception as exc:  # the sequence fails alone; the newcomer still gets in
            seq.fail(InternalError(f"generation failed: {exc}"))
            self.store.checkin(seq.lease, [], None)

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
        if self._solo is not None:
            self._sequences[-1] = self._solo[0]  # failed and given back below, as the rest
            self._solo = None
        for seq in self._sequences.values():
            seq.fail(error)
            self.store.checkin(seq.lease, [], None)
        self._sequences.clear()
        self._generator.close()
        self._generator = self._new_generator()

    def close(self) -> None:
        self._generator.close()
