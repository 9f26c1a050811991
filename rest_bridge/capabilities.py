"""A model's capabilities as the words the REST APIs use (Ollama's `capabilities`, and ours):
the contract's ModelCapability names without their prefix: completion, tools, thinking,
embedding. A value this bridge does not know (a newer server's) is left out."""

from __future__ import annotations

from collections.abc import Iterable

from osaurus.v1 import model_pb2

_PREFIX = "MODEL_CAPABILITY_"


def capability_words(values: Iterable[int]) -> list[str]:
    words = []
    for value in values:
        if value == model_pb2.MODEL_CAPABILITY_UNSPECIFIED:
            continue
        try:
            words.append(model_pb2.ModelCapability.Name(value).removeprefix(_PREFIX).lower())
        except ValueError:
            continue
    return words
