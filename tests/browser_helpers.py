"""A real browser for the dashboard's tests: Debian's chromium (apt) driven by Playwright (the
`browser` fixture is in tests/e2e/conftest.py)."""

from __future__ import annotations

import shutil
from pathlib import Path

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# As the machine's notes say: no background networking (this machine's network is closed).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_MS = 60_000


class Dashboard:
    """One page of the dashboard, collecting what the browser logs as errors."""

    def __init__(self, browser, base_url: str, shots: Path, on_dialog=None):
        self.base_url, self.shots = base_url, shots
        self.page = browser.new_page(viewport={"width": 1100, "height": 850})
        self.page.set_default_timeout(TIMEOUT_MS)
        self.errors: list[str] = []
        self.page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        if on_dialog is not None:
            self.page.on("dialog", on_dialog)
        self.page.goto(f"{base_url}/ui/")

    def show(self, name: str):
        self.page.click(f"[data-testid=nav-{name}]")
        return self.page

    def by(self, testid: str):
        return self.page.get_by_test_id(testid)

    def shoot(self, name: str) -> None:
        self.page.screenshot(path=str(self.shots / f"{name}.png"), full_page=True)

    def close(self) -> None:
        self.page.close()
        assert self.errors == [], self.errors
