"""API keys: which clients may call the server. Transport-free: the gRPC interceptor
(services/auth_interceptor.py) asks `ApiKeys.check` for each call's key.

Keys come from --api-key / OSU_API_KEY and from --api-key-file (one a line, # comments), which
`reload` reads again (on SIGHUP). No key configured: authentication is off. A key is compared
with every configured one in constant time (hmac.compare_digest, no early exit), so the time a
check takes says nothing about how much of a key was right. Keys are never logged.
"""

from __future__ import annotations

import hmac
import logging
import threading
from collections.abc import Iterable
from pathlib import Path

from osaurus.errors import InvalidArgument

log = logging.getLogger(__name__)


def read_key_file(path: Path) -> list[str]:
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise InvalidArgument(f"cannot read the API key file {path}: {exc.strerror}") from exc
    return [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]


class ApiKeys:
    def __init__(self, keys: Iterable[str] = (), file: Path | None = None):
        self._given = [k for k in keys if k]
        self._file = file
        self._lock = threading.Lock()
        self._keys: tuple[bytes, ...] = ()
        self.reload()

    @property
    def enabled(self) -> bool:
        return bool(self._keys)

    def reload(self) -> None:
        """Read the key file again; if it cannot be read now, the keys in force stay."""
        from_file: list[str] = []
        if self._file is not None:
            try:
                from_file = read_key_file(self._file)
            except InvalidArgument as exc:
                if self._keys:  # a reload: keep serving with the keys we have
                    log.error("%s; keeping the %d keys in force", exc, len(self._keys))
                    return
                raise
        keys = tuple(k.encode() for k in dict.fromkeys([*self._given, *from_file]))
        with self._lock:
            self._keys = keys
        if self._file is not None:
            log.info("API keys: %d in force (%d from %s)", len(keys), len(from_file), self._file)

    def check(self, presented: str | None) -> bool:
        """Whether `presented` is one of the keys (always true when authentication is off)."""
        keys = self._keys
        if not keys:
            return True
        candidate = (presented or "").encode()
        matched = False
        for key in keys:  # every key is compared: no early exit
            matched |= hmac.compare_digest(candidate, key)
        return matched and bool(presented)


def key_from_metadata(metadata: Iterable[tuple[str, str | bytes]]) -> str | None:
    """The key a call presents: `authorization: Bearer KEY`, or `x-api-key: KEY`."""
    for name, value in metadata:
        text = value.decode() if isinstance(value, bytes) else value
        if name == "authorization" and text.lower().startswith("bearer "):
            return text[7:].strip()
        if name == "x-api-key":
            return text.strip()
    return None
