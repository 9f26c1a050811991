"""Stored responses, for GET /v1/responses/{id} and previous_response_id.

They live in the bridge's memory (the server knows no responses: a stored response is an
OpenAI notion), within a budget and an age: past `max_bytes` the oldest go first, and a response
older than `max_age` seconds is gone. Each keeps the conversation it ended (the contract's chat
messages) and the session id its chain shares, so the next turn's prompt hits the session's KV
cache on the server and only its new tail is prefilled. Like the server's sessions, they do not
survive a restart.
"""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from osaurus.v1 import inference_pb2 as pb

MAX_BYTES = 64 << 20
MAX_AGE_SECONDS = 24 * 3600


@dataclass
class StoredResponse:
    body: dict[str, Any]  # the response object, as GET returns it
    conversation: list[pb.ChatMessage]  # every message up to and including this reply
    session_id: str
    stored_at: float
    nbytes: int


class ResponseStore:
    def __init__(self, max_bytes: int = MAX_BYTES, max_age: float = MAX_AGE_SECONDS):
        self.max_bytes, self.max_age = max_bytes, max_age
        self._items: OrderedDict[str, StoredResponse] = OrderedDict()
        self._bytes = 0

    def put(
        self, body: dict[str, Any], conversation: list[pb.ChatMessage], session_id: str
    ) -> None:
        size = len(json.dumps(body)) + sum(m.ByteSize() for m in conversation)
        self.delete(body["id"])
        self._items[body["id"]] = StoredResponse(body, conversation, session_id, time.time(), size)
        self._bytes += size
        while self._bytes > self.max_bytes and len(self._items) > 1:
            self.delete(next(iter(self._items)))

    def get(self, response_id: str) -> StoredResponse | None:
        stored = self._items.get(response_id)
        if stored is not None and time.time() - stored.stored_at > self.max_age:
            self.delete(response_id)
            return None
        return stored

    def delete(self, response_id: str) -> bool:
        stored = self._items.pop(response_id, None)
        if stored is not None:
            self._bytes -= stored.nbytes
        return stored is not None
