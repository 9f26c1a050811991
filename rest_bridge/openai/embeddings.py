"""Translate /v1/embeddings: OpenAI request -> EmbedRequest, EmbedResponse -> OpenAI's list."""

from __future__ import annotations

import base64
import struct
from typing import Any

from osaurus.v1 import inference_pb2 as pb
from rest_bridge.openai.protocol import EmbeddingRequest


def to_embed_request(body: EmbeddingRequest) -> pb.EmbedRequest:
    request = pb.EmbedRequest(model=body.model, dimensions=body.dimensions or 0)
    given = body.input
    if isinstance(given, str):
        request.texts.append(given)
    elif all(isinstance(x, str) for x in given):
        request.texts.extend(given)  # type: ignore[arg-type]
    elif all(isinstance(x, int) for x in given):
        request.token_ids.add(ids=given)  # one input of token ids
    else:
        for ids in given:
            request.token_ids.add(ids=ids)
    return request


def _encoded(values: Any, encoding: str) -> list[float] | str:
    if encoding == "base64":  # little-endian float32, as OpenAI sends and its client decodes
        return base64.b64encode(struct.pack(f"<{len(values)}f", *values)).decode()
    return list(values)


def embedding_list(reply: pb.EmbedResponse, encoding: str) -> dict[str, Any]:
    return {
        "object": "list",
        "data": [
            {"object": "embedding", "index": i, "embedding": _encoded(e.values, encoding)}
            for i, e in enumerate(reply.embeddings)
        ],
        "model": reply.model,
        "usage": {"prompt_tokens": reply.prompt_tokens, "total_tokens": reply.prompt_tokens},
    }
