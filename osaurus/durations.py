"""The duration syntax people type for keep-alive ("300", "90s", "5m", "1h"), in flags, in
osaurus-ctl and in REST requests; the contract carries plain seconds. Imports nothing, so the
bridge may use it too.
"""

from __future__ import annotations

_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600}


def parse_duration(value: str | float) -> float:
    """Seconds from "300", "90s", "5m", "1h" or a number (Ollama's keep_alive style); negative
    means forever. Raises ValueError naming the value."""
    if isinstance(value, bool):
        raise ValueError(f"not a duration: {value!r}")
    if isinstance(value, int | float):
        return float(value)
    text = value.strip().lower()
    scale = _DURATION_UNITS.get(text[-1:])
    try:
        return float(text[:-1]) * scale if scale else float(text)
    except ValueError:
        raise ValueError(
            f"not a duration: {value!r} (use seconds, or a number with s, m or h)"
        ) from None
