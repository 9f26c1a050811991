"""A small random Llama (mlx-lm's own model class) for tests of the layers osaurus swaps in."""

from __future__ import annotations

import mlx.core as mx
from mlx_lm.models import llama
from mlx_lm.models.cache import make_prompt_cache


def tiny_llama(**overrides) -> llama.Model:
    mx.random.seed(0)
    args = dict(
        model_type="llama",
        hidden_size=128,
        num_hidden_layers=2,
        intermediate_size=256,
        num_attention_heads=4,
        num_key_value_heads=2,
        rms_norm_eps=1e-5,
        vocab_size=300,
        rope_theta=500000.0,
    )
    model = llama.Model(llama.ModelArgs(**(args | overrides)))
    mx.eval(model.parameters())
    return model


def greedy_logits(model: llama.Model, prompt: mx.array, steps: int = 4) -> mx.array:
    """Logits of the prompt, then of `steps` greedy decode steps on the cache."""
    cache = make_prompt_cache(model)
    out = [model(prompt, cache=cache)[:, -1]]
    for _ in range(steps):
        out.append(model(mx.argmax(out[-1], axis=-1)[:, None], cache=cache)[:, -1])
    return mx.stack(out, axis=1)


def batch_generate(model: llama.Model, steps: int = 6) -> tuple[list[int], mx.array]:
    """Two prompts of different lengths through mlx-lm's BatchGenerator (left padding, an array
    mask, one RoPE offset per row): the tokens and logprobs of every step, in uid order."""
    from mlx_lm.generate import BatchGenerator

    gen = BatchGenerator(model, max_tokens=steps)
    uids = gen.insert([[5, 17, 42, 7, 99, 3], [8, 9]])
    tokens: list[int] = []
    logprobs: list[mx.array] = []
    finished: set[int] = set()
    while len(finished) < len(uids):
        for r in sorted(gen.next()[1], key=lambda r: r.uid):
            tokens.append(r.token)
            logprobs.append(r.logprobs)
            if r.finish_reason is not None:
                finished.add(r.uid)
    gen.close()
    return tokens, mx.stack(logprobs)
