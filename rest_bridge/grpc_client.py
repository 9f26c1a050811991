"""The stubs of the bridge's one gRPC channel to the osaurus server (opened by the app's
lifespan), for the routes of every API family."""

from __future__ import annotations

from fastapi import Request

from osaurus.client import Stubs


def clients(request: Request) -> Stubs:
    return request.app.state.clients
