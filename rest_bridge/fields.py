"""Request field types the API families share."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator

from osaurus.durations import parse_duration


def _duration(value: str | int | float) -> str | int | float:
    parse_duration(value)  # its ValueError names the value, and becomes the 400's message
    return value


# Ollama's keep_alive syntax: seconds, or "90s", "5m", "1h"; negative: forever; 0: unload now.
KeepAlive = Annotated[str | int | float, AfterValidator(_duration)]
