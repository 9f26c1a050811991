"""The reasoning split on a model mlx-lm detects as thinking (a variant of the test model)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from engine_helpers import chat, make_engine
from thinking_model import make_thinking_model

from osaurus.engine.engine import Engine
from osaurus.engine.request import ReasoningChunk, TextChunk

MODEL = "smollm2-thinking"


@pytest.fixture(scope="module")
def thinking_engine(models_dir: Path, model_id: str, tmp_path_factory) -> Iterator[Engine]:
    directory = tmp_path_factory.mktemp("thinking")
    make_thinking_model(models_dir / model_id, directory / MODEL)
    engine = make_engine(directory)
    yield engine
    engine.shutdown()


async def test_thoughts_go_apart_and_markers_never_reach_the_answer(thinking_engine) -> None:
    reasoning, content = [], []
    async for event in thinking_engine.generate(
        chat(MODEL, "Name the capital of France.", max_tokens=40)
    ):
        if isinstance(event, ReasoningChunk):
            reasoning.append(event.text)
        elif isinstance(event, TextChunk):
            content.append(event.text)
    # The template opened the thinking block, so what the model writes is thought. (Not
    # which words: a 135M model's greedy text moves with the kernel's rounding per CPU.)
    assert "".join(reasoning).strip()
    assert "<think>" not in "".join(content) + "".join(reasoning)


async def test_thinking_off_renders_the_template_without_thinking(thinking_engine) -> None:
    request = replace(chat(MODEL, "Name the capital of France.", max_tokens=24), thinking=False)
    events = [e async for e in thinking_engine.generate(request)]
    # Against the test above (same prompt, thoughts): the template closed the block itself.
    assert not any(isinstance(e, ReasoningChunk) for e in events)
    prompt_tokens, _ = await thinking_engine.count_tokens(request)
    thinking_tokens, _ = await thinking_engine.count_tokens(replace(request, thinking=True))
    assert prompt_tokens != thinking_tokens


async def test_a_model_that_does_not_think_gets_no_reasoning(engine, model_id) -> None:
    events = [e async for e in engine.generate(chat(model_id, "What is 2 + 2?", max_tokens=8))]
    assert not any(isinstance(e, ReasoningChunk) for e in events)
