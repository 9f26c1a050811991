"""The largest request body the bridge reads: past it, 413 in the API family's error shape,
before anything is parsed. A body without a Content-Length (chunked) is read up to the limit
and refused as soon as it goes past."""

from __future__ import annotations

from collections.abc import Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rest_bridge.errors import BridgeError, Render


class BodyLimit:
    def __init__(self, app: ASGIApp, max_bytes: int, render_for: Callable[[Request], Render]):
        self.app, self.max_bytes, self.render_for = app, max_bytes, render_for

    def _too_large(self, scope: Scope, size: str) -> Response:
        error = BridgeError(
            f"the request body ({size}) is larger than this server takes "
            f"({self.max_bytes} bytes, --max-request-mb)",
            413,
            reason="REQUEST_TOO_LARGE",
        )
        return self.render_for(Request(scope))(error)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None:
            if length.isdigit() and int(length) > self.max_bytes:
                return await self._too_large(scope, f"{int(length)} bytes")(scope, receive, send)
            return await self.app(scope, receive, send)
        # No length given: read it all (up to the limit) first, then hand it on.
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            size += len(message.get("body", b""))
            if size > self.max_bytes:
                return await self._too_large(scope, "more than that")(scope, receive, send)
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)
