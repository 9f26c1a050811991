"""Decoding one sequence on its own, out of the batch; greedy ones speculate by prompt lookup.

When a reply repeats its input (code edits, summaries, JSON echoing the prompt), the next tokens
are often a copy of tokens that already followed the last few tokens somewhere in the context.
Prompt lookup drafts those tokens with no draft model, and one forward pass over the pending
token plus the draft verifies them all: the model's greedy choice at each position is kept while
it agrees with the draft, plus the first token where it does not (so every pass gains at least
one token and the output is exactly the greedy output). The rejected draft's entries are
trimmed from the KV cache.

mlx-lm has speculative decoding with a draft model (`speculative_generate_step`) but not prompt
lookup, and its loop owns the generation; this one is a step the scheduler drives, so that the
sequence can go back into the batch when another request arrives.

A sampled sequence decodes alone too, one token per pass (a draft is verified against the
greedy choice only): a batch of one costs mlx-lm's batch bookkeeping on every step.
"""

from __future__ import annotations

from typing import Any

import mlx.core as mx
from mlx_lm.models.cache import trim_prompt_cache

from osaurus.engine.sampling import Sampler, greedy, take_back_last_draw

# Longest and shortest n-gram looked up (longer first: more context, better drafts).
MAX_NGRAM = 3
MIN_NGRAM = 2
# Draft length adapts between these: on this CPU a pass over k+1 rows costs more than a pass
# over one (the matmuls are compute-bound), so drafts grow only while they are accepted.
MIN_DRAFT = 2
MAX_DRAFT = 8


class NgramIndex:
    """The tokens so far, and where each of their n-grams (n = MIN_NGRAM..MAX_NGRAM) occurred
    last and before that, kept up to date as tokens are added: a lookup costs the same at any
    context length (a scan of a 4,000-token context took ~4 ms of a ~35 ms step)."""

    def __init__(self, tokens: list[int]):
        self.tokens: list[int] = []
        self._latest: dict[tuple[int, ...], int] = {}  # n-gram -> where it last started
        self._earlier: dict[tuple[int, ...], int] = {}  # ... and where it started before that
        self.extend(tokens)

    def extend(self, tokens: list[int]) -> None:
        for token in tokens:
            self.tokens.append(token)
            end = len(self.tokens)
            for n in range(MIN_NGRAM, min(MAX_NGRAM, end) + 1):
                key = tuple(self.tokens[end - n :])
                if key in self._latest:
                    self._earlier[key] = self._latest[key]
                self._latest[key] = end - n

    def draft(self, max_tokens: int) -> list[int]:
        """The tokens that followed the latest earlier occurrence of the last n tokens (longest
        n first: more context, better drafts), at most `max_tokens`; [] when there is none."""
        for n in range(MAX_NGRAM, MIN_NGRAM - 1, -1):
            start = self._earlier.get(tuple(self.tokens[-n:]))
            if start is not None:
                return self.tokens[start + n : start + n + max_tokens]
        return []


class PromptLookupDecoder:
    """Decoding of one sequence: greedy (no `sampler`), several tokens per forward pass when
    drafts agree (`drafting`); with a sampler, one sampled token per pass.

    `cache` holds the KV of `tokens`; `pending` is the last token chosen, not yet in the cache.
    Between steps a pass over `pending` may be in flight (see `step`); `settle` takes it back,
    and whoever takes the cache over calls it first.
    """

    def __init__(
        self,
        model: Any,
        cache: list[Any],
        tokens: list[int],
        pending: int,
        sampler: Sampler | None = None,
        drafting: bool = True,
    ):
        self.model = model
        self.cache = cache
        self.tokens = tokens
        self.pending = pending
        self.sampler = sampler
        self.drafting = drafting and sampler is None
        self.draft_length = MIN_DRAFT
        self.drafted = 0  # for the log: how many draft tokens were tried and kept
        self.accepted = 0
        self._index = NgramIndex([*tokens, pending])
        self._ahead: mx.array | None = None  # the in-flight pass's greedy token after pending
        self._first_pass = True

    def step(self, ahead: bool = True) -> list[int]:
        """One forward pass; returns the tokens it chose (1 to draft length + 1), in order.

        With no draft, the pass is pipelined as mlx-lm's generate_step is: the next pass is
        built on this one's lazy output and set running before this one's token is read, so
        Python's graph building and the scheduler's work overlap the evaluation (`ahead`:
        whether a next token is wanted at all). A pass in flight takes no draft; once one
        would have had a draft, the chain stops and the next step drafts again."""
        if self._ahead is None:
            draft = self._draft()
            if draft or not ahead or self._first_pass:
                # The first pass runs alone: its token is often a reply's first, and launching
                # the next pass behind it held it back (MLX's CPU eval waits while ~100 ops
                # are in flight): 13 -> 7 ms to the first token, test model.
                self._first_pass = False
                return self._verify(draft)
            self._ahead = self._launch(mx.array([[self.pending]]))
        token = self._ahead
        self.tokens.append(self.pending)  # the pass in flight puts it in the cache
        chain = ahead and not self._draft()
        self._ahead = self._launch(token.reshape(1, 1)) if chain else None
        self.pending = token.item()  # type: ignore[assignment]  # a token id: an int
        self._index.extend([self.pending])
        return [self.pending]

    def settle(self) -> None:
        """Take back the pass in flight, if any: the cache then holds `tokens` only, and the
        pass ends unread (a slot the next write to the cache overwrites)."""
        if self._ahead is not None:
            trim_prompt_cache(self.cache, 1)
            self._ahead = None
            if self.sampler is not None:
                take_back_last_draw(self.sampler)

    def _draft(self) -> list[int]:
        return self._index.draft(self.draft_length) if self.drafting else []

    def _choose(self, logits: mx.array) -> mx.array:
        """The token after each row of `logits` (one row when sampling: there is no draft).
        Sampled from log-probabilities, as mlx-lm's batch samples them, so that a seeded
        sequence draws the same tokens alone and batched."""
        if self.sampler is None:
            return greedy(logits)
        return self.sampler(logits - mx.logsumexp(logits, axis=-1, keepdims=True))

    def _launch(self, inputs: mx.array) -> mx.array:
        logits = self.model(inputs, cache=self.cache)
        token = self._choose(logits[0, -1:])
        mx.async_eval(token)
        return token

    def _verify(self, draft: list[int]) -> list[int]:
        """One pass over the pending token and the draft, keeping what the model agrees with."""
        inputs = mx.array([[self.pending, *draft]])
        logits = self.model(inputs, cache=self.cache)
        chosen: list[int] = self._choose(logits[0]).tolist()  # type: ignore[assignment]
        kept = 0
        while kept < len(draft) and chosen[kept] == draft[kept]:
            kept += 1
        if kept < len(draft):
            trim_prompt_cache(self.cache, len(draft) - kept)
        self.tokens += [self.pending, *draft[:kept]]
        self.pending = chosen[kept]
        self.drafted += len(draft)
        self.accepted += kept
        if draft:
            grow = kept == len(draft)
            self.draft_length = min(MAX_DRAFT, self.draft_length * 2) if grow else MIN_DRAFT
        new = [*draft[:kept], chosen[kept]]
        self._index.extend(new)
        return new

    def keep_only(self, emitted: int, chosen: int) -> None:
        """The sequence ended after `emitted` of the `chosen` tokens of the last step: drop
        the cache entries of the draft tokens past the end, so the cache holds what was said."""
        self.settle()
        extra = chosen - 1 - emitted  # the last chosen token is pending, never in the cache
        if extra > 0:
            trim_prompt_cache(self.cache, extra)
            del self.tokens[-extra:]
