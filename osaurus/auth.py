"""API keys: which clients may call the server. Transport-free: the gRPC interceptor
(services/auth_interceptor.py) asks `ApiKeys.check` for each call's key.

Keys come from --api-key / OSU_API_KEY, --read-only-api-key / OSU_READ_ONLY_API_KEY and from
--api-key-file (one a line, "KEY" or "KEY read-only", # comments), which `reload` reads again
(on SIGHUP). No key configured: authentication is off. A key is compared with every configured
one in constant time (hmac.compare_digest, no early exit), so the time a check takes says
nothing about how much of a key was right. Keys are never logged.

Roles: an admin key may call everything; a read-only key may generate, embed, count tokens, use
sessions and read (list, search, status, metrics), but not change what the server holds (pull,
import, copy, delete, load, unload): the interceptor refuses those with PERMISSION_DENIED.
"""

from __future__ import annotations

import hmac
import logging
import threading
from collections.abc import Iterable
from enum import Enum
from pathlib import Path

from osaurus.errors import InvalidArgument

log = logging.getLogger(__name__)


class Role(Enum):
    ADMIN = "admin"
    READ_ONLY = "read-only"


def read_key_file(path: Path) -> list[tuple[str, Role]]:
    """The keys of a key file with their roles: a line is "KEY" (admin) or "KEY ROLE"."""
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise InvalidArgument(f"cannot read the API key file {path}: {exc.strerror}") from exc
    roles = {r.value: r for r in Role}
    keys = []
    for number, line in enumerate(lines, 1):
        words = line.split()
        if not words or words[0].startswith("#"):
            continue
        if len(words) > 2 or (len(words) == 2 and words[1] not in roles):
            # The line is not repeated: it holds a key.
            raise InvalidArgument(
                f"{path} line {number}: expected KEY or KEY followed by one of {', '.join(roles)}"
            )
        keys.append((words[0], roles[words[1]] if len(words) == 2 else Role.ADMIN))
    return keys


class ApiKeys:
    def __init__(
        self,
        keys: Iterable[str] = (),
        file: Path | None = None,
        read_only: Iterable[str] = (),
    ):
        self._given = [(k, Role.ADMIN) for k in keys if k]
        self._given += [(k, Role.READ_ONLY) for k in read_only if k]
        self._file = file
        self._lock = threading.Lock()
        self._keys: tuple[tuple[bytes, Role], ...] = ()
        self.reload()

    @property
    def enabled(self) -> bool:
        return bool(self._keys)

    def reload(self) -> None:
        """Read the key file again; if it cannot be read now, the keys in force stay."""
        from_file: list[tuple[str, Role]] = []
        if self._file is not None:
            try:
                from_file = read_key_file(self._file)
            except InvalidArgument as exc:
                if self._keys:  # a reload: keep serving with the keys we have
                    log.error("%s; keeping the %d keys in force", exc, len(self._keys))
                    return
                raise
        roles: dict[str, Role] = {}
        for key, role in [*self._given, *from_file]:
            roles.setdefault(key, role)  # a key given twice keeps its first role: flags first
        keys = tuple((key.encode(), role) for key, role in roles.items())
        with self._lock:
            self._keys = keys
        if self._file is not None:
            log.info("API keys: %d in force (%d from %s)", len(keys), len(from_file), self._file)

    def check(self, presented: str | None) -> bool:
        """Whether `presented` is one of the keys (always true when authentication is off)."""
        return self.role(presented) is not None

    def role(self, presented: str | None) -> Role | None:
        """The role of key `presented`; None when it is not a key. Admin when authentication
        is off."""
        keys = self._keys
        if not keys:
            return Role.ADMIN
        candidate = (presented or "").encode()
        found = None
        for key, role in keys:  # every key is compared: no early exit
            if hmac.compare_digest(candidate, key):
                found = role
        return found if presented else None


def key_from_metadata(metadata: Iterable[tuple[str, str | bytes]]) -> str | None:
    """The key a call presents: `authorization: Bearer KEY`, or `x-api-key: KEY`."""
    for name, value in metadata:
        text = value.decode() if isinstance(value, bytes) else value
        if name == "authorization" and text.lower().startswith("bearer "):
            return text[7:].strip()
        if name == "x-api-key":
            return text.strip()
    return None
