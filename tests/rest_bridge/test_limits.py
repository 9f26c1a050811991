"""The request body limit: 413 in the API family's shape, by Content-Length or while a chunked
body is read, before any parsing."""

from __future__ import annotations

import httpx
import pytest

from osaurus.client import Stubs, open_aio_channel
from rest_bridge.app import create_app

LIMIT = 1024


async def _post(path: str, content, headers: dict | None = None) -> httpx.Response:
    app = create_app("127.0.0.1:1", max_request_bytes=LIMIT)
    # No server behind it (nothing listens on port 1): what passes the limit fails later.
    app.state.clients = Stubs.over("127.0.0.1:1", open_aio_channel("127.0.0.1:1"))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://bridge") as client:
        return await client.post(path, content=content, headers=headers)


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/api/chat", "/v1/messages"])
async def test_a_body_over_the_limit_is_413_in_the_familys_shape(path) -> None:
    r = await _post(path, b"x" * (LIMIT + 1), {"content-type": "application/json"})
    assert r.status_code == 413
    body = r.json()
    message = body["error"] if path.startswith("/api/") else body["error"]["message"]
    assert "larger than this server takes" in message and str(LIMIT) in message
    if path == "/v1/messages":
        assert body["error"]["type"] == "request_too_large"


async def test_a_chunked_body_is_cut_off_at_the_limit() -> None:
    async def chunks():
        for _ in range(4):
            yield b"x" * (LIMIT // 2)

    r = await _post("/v1/chat/completions", chunks(), {"content-type": "application/json"})
    assert r.status_code == 413


async def test_a_body_within_the_limit_reaches_the_route() -> None:
    r = await _post("/v1/chat/completions", b'{"model": 1}', {"content-type": "application/json"})
    assert r.status_code == 400 and "model" in r.json()["error"]["param"]
