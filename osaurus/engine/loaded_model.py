"""A model in memory: mlx-lm's model and tokenizer plus what the engine needs to know of them."""

from __future__ import annotations

import contextlib
import ctypes
import functools
import time
from dataclasses import dataclass, field
from typing import Any

from osaurus.chat.stopping import end_of_turn_ids
from osaurus.chat.template import RenderedPrompt, encode_prompt, render_chat, template_switches
from osaurus.engine.decoder_layers import use_native_decoder_layers
from osaurus.engine.fast_layers import use_native_fast_ops, use_native_logsumexp
from osaurus.engine.options import Float32Policy, KVCacheDtype
from osaurus.engine.precision import Precision, apply_precision_policy
from osaurus.engine.request import GenerationRequest
from osaurus.errors import InvalidArgument, UnsupportedModel
from osaurus.models.registry import ModelInfo


@dataclass
class LoadedModel:
    info: ModelInfo
    model: Any  # mlx.nn.Module
    tokenizer: Any  # mlx_lm TokenizerWrapper
    stop_token_ids: set[int]
    load_seconds: float
    precision: Precision
    memory_bytes: int = 0  # the weights as loaded
    kv_cache_dtype: str = "float32"  # what its KV cache holds
    loaded_at: float = field(default_factory=time.perf_counter)

    @functools.cached_property
    def grammar_tokenizer(self) -> Any:
        """llguidance's tokenizer, for constrained decoding; built on first use (~0.3 s)."""
        from osaurus.engine.constraints import make_llg_tokenizer

        return make_llg_tokenizer(self.tokenizer._tokenizer, self.stop_token_ids)

    @property
    def context_length(self) -> int:
        return self.info.context_length

    def prompt_tokens(self, request: GenerationRequest) -> tuple[list[int], RenderedPrompt | None]:
        """Tokens of the request's prompt (its chat rendered through the template, or raw text)."""
        if request.messages is not None:
            tools = request.tools if request.tool_choice.mode != "none" else None
            rendered = render_chat(
                self.tokenizer, request.messages, tools, template_switches(request)
            )
            return encode_prompt(self.tokenizer, rendered.text), rendered
        if request.prompt_token_ids is not None:
            vocab = len(self.tokenizer.get_vocab())
            if any(not 0 <= t < vocab for t in request.prompt_token_ids):
                raise InvalidArgument(
                    f"prompt token ids must be below {self.info.id}'s vocabulary size {vocab}",
                    field="prompt",
                )
            return list(request.prompt_token_ids), None
        return encode_prompt(self.tokenizer, request.prompt or ""), None


def release_freed_memory() -> None:
    """Give back to the system what loading freed. Casting to float32, stacking projections
    and repacking replace arrays by new ones of the same size; the old ones go to MLX's buffer
    cache and then to glibc's heap, which keeps them (the 98 MB test model left ~40 MB there)."""
    import mlx.core as mx

    mx.clear_cache()
    with contextlib.suppress(OSError, AttributeError):  # glibc's; musl and macOS have none
        ctypes.CDLL(None).malloc_trim(0)


def load_model(
    info: ModelInfo,
    float32: Float32Policy = Float32Policy.AUTO,
    kv_cache_dtype: KVCacheDtype = KVCacheDtype.FLOAT16,
) -> LoadedModel:
    """Load weights and tokenizer with mlx-lm, then apply the CPU float32 policy. Call on the
    engine thread only."""
    from mlx.utils import tree_flatten
    from mlx_lm import load

    start = time.perf_counter()
    try:
        model, tokenizer = load(str(info.path))[:2]
    except ValueError as exc:  # mlx-lm's way of saying "unknown model type" and the like
        raise UnsupportedModel(f"cannot load model {info.id!r}: {exc}", field="model") from exc
    except FileNotFoundError as exc:
        raise InvalidArgument(f"model {info.id!r} is incomplete: {exc}", field="model") from exc
    precision = apply_precision_policy(model, float32)
    use_native_fast_ops(model)  # on the CPU: norms, RoPE, attention as one op each
    # and llama layers whose parts are all native: two ops each
    native_layers = use_native_decoder_layers(model, kv_cache_dtype)
    use_native_logsumexp()  # and mlx-lm's per-step normalization of the logits
    release_freed_memory()
    return LoadedModel(
        info=info,
        model=model,
        tokenizer=tokenizer,
        stop_token_ids=end_of_turn_ids(tokenizer),
        load_seconds=time.perf_counter() - start,
        precision=precision,
        memory_bytes=sum(p.nbytes for _, p in tree_flatten(model.parameters())),  # type: ignore[str-unpack,union-attr]
        kv_cache_dtype=kv_cache_dtype.value if native_layers else "float32",
    )
