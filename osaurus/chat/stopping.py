"""When generation stops: end-of-turn tokens, and stop strings that never leak.

A stop string may span several tokens, so text that could be the start of one is held back and
released only once it cannot be (mlx-lm's TextStateMachine does the matching; this module only
adapts it to "feed text, get what is safe to send, learn whether a stop matched").
"""

from __future__ import annotations

from typing import Any

from mlx_lm.generate import TextStateMachine

# Special tokens that end an assistant turn in the common chat formats.
END_OF_TURN_TOKENS = (
    "<|im_end|>",
    "<|eot_id|>",
    "<|end|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "<|end_of_text|>",
    "<|return|>",
    "<|END_OF_TURN_TOKEN|>",
    "</s>",
)


def end_of_turn_ids(tokenizer: Any) -> set[int]:
    """EOS ids plus every end-of-turn marker that is a special token of this tokenizer."""
    ids = set(getattr(tokenizer, "eos_token_ids", None) or [])
    if getattr(tokenizer, "eos_token_id", None) is not None:
        ids.add(tokenizer.eos_token_id)
    vocab = tokenizer.get_vocab()
    special = set(getattr(tokenizer, "all_special_tokens", []) or [])
    added = getattr(tokenizer, "added_tokens_encoder", {}) or {}
    for token in END_OF_TURN_TOKENS:
        if token in vocab and (token in special or token in added):
            ids.add(vocab[token])
    return ids


class StopStringFilter:
    """Feed decoded text; get back the text that is safe to emit and whether a stop matched."""

    def __init__(self, stops: list[str]):
        self._stops = [s for s in stops if s]
        machine = TextStateMachine({"normal": [(s, None) for s in self._stops]})
        self._machine = machine if self._stops else None
        self._state = self._machine.make_state() if self._machine else None
        self._recent = ""  # the last text fed, long enough to hold any stop string
        self.stopped = False
        self.matched: str | None = None  # the stop string that ended the text

    def feed(self, text: str) -> str:
        if self._machine is None:
            return text
        if self.stopped:
            return ""
        self._state, segments = TextStateMachine.split(self._state, text)
        out = "".join(t for s, t in segments if s is not None)
        longest = max(map(len, self._stops))
        self._recent = (self._recent + text)[-(2 * longest + len(text)) :]
        if self._state[0] is None:
            self.stopped = True
            self.matched = self._first_match()
        return out

    def _first_match(self) -> str | None:
        """The stop string the machine matched: of those in the recent text, the one that
        ends first (the machine stops at the first complete match)."""
        found = [(self._recent.find(s) + len(s), s) for s in self._stops if s in self._recent]
        return min(found)[1] if found else None

    def flush(self) -> str:
        """Release held-back text at the end of generation (it was not a stop string)."""
        if self._machine is None or self.stopped:
            return ""
        self._state, text, _ = TextStateMachine.flush(self._state)
        return text
