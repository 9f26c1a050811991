"""KV caches kept between requests: one per session, plus an anonymous prefix cache, one budget.

A request checks a cache out when it is admitted and checks it back in (extended by its reply)
when it finishes, so the next turn of a chat only prefills its new tail.

- Sessions (a client-chosen `session_id`) own their cache. While a request holds it the session
  is "in use": a second request with the same id runs without it, and its cache goes to the
  prefix cache instead of overwriting the session.
- Requests without a session share mlx-lm's `LRUPromptCache`: a token trie, so a repeated system
  prompt or a retried request is found by prefix.
- One byte budget covers both. Over it, prefix entries are dropped first (least recently used),
  then idle sessions, oldest first: a session is a client's explicit ask to be remembered.

Runs on the engine thread only; no locking.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import mlx.core as mx
from mlx_lm.models.cache import KVCache as MlxKVCache
from mlx_lm.models.cache import LRUPromptCache, can_trim_prompt_cache, trim_prompt_cache

KVCache = list[Any]  # mlx-lm's per-layer cache objects


def cache_nbytes(cache: KVCache) -> int:
    return sum(c.nbytes for c in cache)


def materialize(cache: KVCache) -> None:
    """Evaluate a cache before it is kept, holding its tokens only.

    mlx-lm's BatchKVCache.extract returns lazy copies (mx.contiguous of a slice), which hold on
    to the whole batch's KV buffer until evaluated: kept unevaluated, each stored cache pinned a
    batch-sized buffer, and a 16-client soak grew the server by ~70 MB/s while the store counted
    a few MB. And a KVCache grows in steps of 256 positions and keeps its buffer when trimmed (a
    solo or speculative sequence's cache): a short chat kept 256 positions a layer (13 MB on
    the test model), counted against the budget as if they were tokens. The cache grows again
    from its tokens when it is reused."""
    for layer in cache:
        if _worth_compacting(layer):
            layer.keys = mx.contiguous(layer.keys[..., : layer.offset, :])
            layer.values = mx.contiguous(layer.values[..., : layer.offset, :])
    arrays = [a for c in cache for a in (getattr(c, "keys", None), getattr(c, "values", None))]
    mx.eval([a for a in arrays if a is not None])


def _worth_compacting(layer: Any) -> bool:
    """A plain KVCache whose spare room is over a quarter of what it holds: copying out the used
    part then costs at most ~4x the bytes it frees (a long session keeps its <256 spare
    positions)."""
    if type(layer) is not MlxKVCache or layer.keys is None or layer.offset == 0:
        return False
    return bool(layer.keys.shape[2] - layer.offset > layer.offset // 4)


def common_prefix_length(a: list[int], b: list[int]) -> int:
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n


@dataclass
class Session:
    session_id: str
    model: str
    tokens: list[int] = field(default_factory=list)  # what `cache` holds
    cache: KVCache | None = None
    nbytes: int = 0
    in_use: bool = False
    created: float = field(default_factory=time.time)
    last_used: float = field(default_factory=time.time)


@dataclass
class Lease:
    """A checked-out cache for one request: `cache` already holds `reused` prompt tokens."""

    model: str
    cache: KVCache | None
    reused: int
    session_id: str | None  # the session this request holds, if any


class KVCacheStore:
    def __init__(self, budget_bytes: int, prefix_cache: bool = True, max_prefix_entries: int = 64):
        self.budget_bytes = budget_bytes
        self.prefix_enabled = prefix_cache
        self._max_prefix_entries = max_prefix_entries
        self._prefix = self._new_prefix_cache()
        self._sessions: OrderedDict[str, Session] = OrderedDict()  # oldest first

    def _new_prefix_cache(self) -> LRUPromptCache:
        return LRUPromptCache(max_size=self._max_prefix_entries, max_bytes=self.budget_bytes)

    # -- requests ---------------------------------------------------------------------------

    def checkout(self, model: str, prompt: list[int], session_id: str = "") -> Lease:
        """Find the cache covering the longest prefix of `prompt` (always leaving at least one
        token to prefill: the model must see the last prompt token to produce the first reply
        token)."""
        held_session = None
        if session_id:
            session = self._sessions.get(session_id)
            if session is None or (session.model != model and not session.in_use):
                session = Session(session_id, model)  # new, or re-bound to another model
                self._sessions[session_id] = session
            if not session.in_use:
                session.in_use = True
                session.last_used = time.time()
                self._sessions.move_to_end(session_id)
                held_session = session_id
                cache, tokens = session.cache, session.tokens
                session.cache, session.tokens, session.nbytes = None, [], 0
                if cache is not None:
                    reused = self._trim_to_prompt(cache, tokens, prompt)
                    if reused:
                        return Lease(model, cache, reused, held_session)
        if self.prefix_enabled:
            cache, rest = self._prefix.fetch_nearest_cache(model, prompt)
            reused = len(prompt) - len(rest)
            if cache is not None and reused == len(prompt):  # an exact hit: give back one token
                reused = self._trim_to_prompt(cache, prompt, prompt)
            if cache is not None and reused:
                return Lease(model, cache, reused, held_session)
        return Lease(model, None, 0, held_session)

    def checkin(self, lease: Lease | None, tokens: list[int], cache: KVCache | None) -> None:
        """Keep a finished request's cache (holding `tokens`), then fit the budget. (A request
        that failed before it got a lease has nothing to give back.)"""
        if lease is None:
            return
        if cache is not None:
            materialize(cache)
        session = self._sessions.get(lease.session_id) if lease.session_id else None
        if session is not None and session.in_use:
            session.in_use = False
            session.last_used = time.time()
            if cache is not None:
                session.cache, session.tokens, session.nbytes = cache, tokens, cache_nbytes(cache)
        elif cache is not None and self.prefix_enabled and not lease.session_id:
            self._prefix.insert_cache(lease.model, tokens, cache)
        self._fit_budget()

    @staticmethod
    def _trim_to_prompt(cache: KVCache, tokens: list[int], prompt: list[int]) -> int:
        """Trim `cache` (holding `tokens`) to its common prefix with `prompt` minus the last
        prompt token; return how many prompt tokens it still covers (0: unusable)."""
        keep = min(common_prefix_length(tokens, prompt), len(prompt) - 1)
        if keep <= 0:
            return 0
        if keep < len(tokens):
            if not can_trim_prompt_cache(cache):
                return 0
            trim_prompt_cache(cache, len(tokens) - keep)
        return keep

    # -- memory -----------------------------------------------------------------------------

    @property
    def session_bytes(self) -> int:
        return sum(s.nbytes for s in self._sessions.values())

    @property
    def prefix_bytes(self) -> int:
        return self._prefix.nbytes

    def _fit_budget(self) -> None:
        sessions = self.session_bytes
        self._prefix.trim_to(n_bytes=self.budget_bytes - sessions)
        for session in list(self._sessions.values()):  # oldest first
            if sessions <= self.budget_bytes:
                break
            if session.cache is not None:
                sessions -= session.nbytes
                session.cache, session.tokens, session.nbytes = None, [], 0
                if not session.in_use:
                    del self._sessions[session.session_id]

    def drop_model(self, model: str) -> None:
        """Forget every cache of `model` (unloaded or deleted). The prefix trie has no per-model
        removal, so it is emptied whole; sessions of other models stay."""
        self._prefix = self._new_prefix_cache()
        for session in list(self._sessions.values()):
            if session.model == model and not session.in_use:
                del self._sessions[session.session_id]

    # -- sessions ---------------------------------------------------------------------------

    def sessions(self) -> list[Session]:
        return list(reversed(self._sessions.values()))  # most recently used first

    def session(self, session_id: str) -> Session | None:
        return self._sessions.get(session_id)

    def delete_session(self, session_id: str) -> bool:
        """Drop a session; if a request holds it, its cache is not kept when it finishes."""
        return self._sessions.pop(session_id, None) is not None
