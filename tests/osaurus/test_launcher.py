"""The launcher's event loop: uvloop's, on which the REST bridge measured faster."""

from __future__ import annotations

import asyncio

import pytest

from osaurus import launcher


def test_the_server_loop_is_uvloop_where_it_is_installed() -> None:
    uvloop = pytest.importorskip("uvloop")
    seen: list[asyncio.AbstractEventLoop] = []

    async def main() -> None:
        seen.append(asyncio.get_running_loop())

    launcher._run_loop(main())
    assert isinstance(seen[0], uvloop.Loop)
