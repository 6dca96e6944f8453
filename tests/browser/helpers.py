"""Real-browser plumbing shared by the browser tests: Debian's chromium through Playwright, pages that
report what went wrong inside them, loads that survive Docker's network changes, and screenshots."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from playwright.sync_api import Page

from tests.instance import ARTIFACTS

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]


def open_page(page: Page, url: str, ready: Callable[[], None], attempts: int = 3) -> None:
    """Load `url` until `ready()` passes.

    Chromium aborts requests in flight with ERR_NETWORK_CHANGED whenever a network interface comes or
    goes on this host, and Docker adds one per container it starts. A page load that met such an
    abort is loaded again; any other failure fails the test.
    """
    for attempt in range(attempts):
        problems: list[str] = page.problems  # type: ignore[attr-defined]
        problems.clear()
        if attempt == 0:
            page.goto(url)
        else:
            page.reload()
        try:
            ready()
            return
        except Exception:
            if attempt == attempts - 1 or not any("ERR_NETWORK_CHANGED" in p for p in problems):
                raise


def shot(page: Page, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path))
    return path
