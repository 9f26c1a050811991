"""The launcher's event loop and HTTP parser: uvloop's and httptools', on which the REST bridge
measured faster."""

from __future__ import annotations

import asyncio

import pytest
import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from osaurus import launcher


def test_the_server_loop_is_uvloop_where_it_is_installed() -> None:
    uvloop = pytest.importorskip("uvloop")
    seen: list[asyncio.AbstractEventLoop] = []

    async def main() -> None:
        seen.append(asyncio.get_running_loop())

    launcher._run_loop(main())
    assert isinstance(seen[0], uvloop.Loop)


def test_http_is_parsed_by_httptools() -> None:
    # uvicorn's "auto" takes httptools when it is installed (a dependency); without it, h11.
    config = uvicorn.Config(lambda scope, receive, send: None)
    config.load()
    assert config.http_protocol_class is HttpToolsProtocol
