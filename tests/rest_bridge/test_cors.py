"""CORS: a configured origin's preflight is answered and its responses carry the allow header;
any other origin gets none (the browser then refuses), and without origins nothing is allowed."""

from __future__ import annotations

import httpx
import pytest

from rest_bridge.app import create_app

PREFLIGHT = {
    "access-control-request-method": "POST",
    "access-control-request-headers": "content-type,authorization",
}


async def _preflight(app, origin: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://bridge") as client:
        return await client.options("/v1/chat/completions", headers={"origin": origin, **PREFLIGHT})


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/api/chat", "/v1/messages"])
async def test_a_configured_origin_passes_preflight(path) -> None:
    app = create_app("127.0.0.1:1", ("https://app.example",))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://bridge") as client:
        r = await client.options(path, headers={"origin": "https://app.example", **PREFLIGHT})
    assert r.status_code == 200
    assert r.headers["access-control-allow-origin"] == "https://app.example"
    assert "POST" in r.headers["access-control-allow-methods"]


async def test_other_origins_get_no_allow_header() -> None:
    r = await _preflight(
        create_app("127.0.0.1:1", ("https://app.example",)), "https://evil.example"
    )
    assert "access-control-allow-origin" not in r.headers
    r = await _preflight(create_app("127.0.0.1:1"), "https://app.example")  # no origins set
    assert "access-control-allow-origin" not in r.headers


async def test_star_allows_any_origin() -> None:
    r = await _preflight(create_app("127.0.0.1:1", ("*",)), "https://anywhere.example")
    assert r.headers["access-control-allow-origin"] in {"*", "https://anywhere.example"}
