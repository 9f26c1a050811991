"""How the families frame their server-sent events (sse-starlette writes them)."""

from __future__ import annotations

import json
from typing import Any


def data_event(payload: dict[str, Any]) -> dict[str, str]:
    """A data-only event (OpenAI's chat and completions streams)."""
    return {"data": json.dumps(payload, separators=(",", ":"))}


def named_event(payload: dict[str, Any]) -> dict[str, str]:
    """An event named by its payload's type (Anthropic's and the Responses API's streams)."""
    return {"event": payload["type"], **data_event(payload)}
