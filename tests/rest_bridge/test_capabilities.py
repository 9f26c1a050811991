"""The capability words the REST APIs use, from the contract's enum."""

from __future__ import annotations

from osaurus.v1 import model_pb2
from rest_bridge.capabilities import capability_words


def test_every_capability_has_its_word_and_unknown_values_are_left_out() -> None:
    known = [v.number for v in model_pb2.ModelCapability.DESCRIPTOR.values if v.number]
    assert capability_words(known) == ["completion", "tools", "thinking", "embedding"]
    assert capability_words([model_pb2.MODEL_CAPABILITY_UNSPECIFIED, 99, 2]) == ["tools"]
