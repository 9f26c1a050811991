"""The web dashboard at /ui: static files served as they are (no build step at install or run
time; the libraries are vendored under static/vendor). The page calls the bridge's public routes
only. Its files go out with a Content-Security-Policy that allows this origin's scripts alone,
a second guard (after DOMPurify) against HTML in a model's output."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from starlette.responses import Response

STATIC = Path(__file__).parent / "static"
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; connect-src 'self'; img-src 'self' data:; "
    "style-src 'self' 'unsafe-inline'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)


class DashboardFiles(StaticFiles):
    def file_response(self, *args: Any, **kwargs: Any) -> Response:
        response = super().file_response(*args, **kwargs)
        response.headers["content-security-policy"] = CONTENT_SECURITY_POLICY
        response.headers["x-content-type-options"] = "nosniff"
        return response


def mount_dashboard(app: FastAPI) -> None:
    app.mount("/ui", DashboardFiles(directory=STATIC, html=True), name="ui")
