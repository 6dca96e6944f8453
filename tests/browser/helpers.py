"""Real-browser plumbing shared by the browser tests: Debian's chromium through Playwright, pages that
report what went wrong inside them, loads that survive Docker's network changes, and screenshots."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from playwright.sync_api import Page
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from tests.instance import ARTIFACTS

CHROMIUM = "/usr/bin/chromium"
SLICE_MS = 2_000  # how often a page that is not ready yet is checked for an aborted load
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]


def open_page(
    page: Page, url: str, ready: Callable[[float], None], timeout_ms: float = 30_000, attempts: int = 3
) -> None:
    """Load `url` until `ready(ms)` (which waits at most `ms` milliseconds) passes within `timeout_ms`.

    Chromium aborts requests in flight with ERR_NETWORK_CHANGED whenever a network interface comes or
    goes on this host, and Docker adds one per container it starts. A page load that met such an
    abort is loaded again at once (what was cut off would never come); any other failure fails the test.
    """
    for attempt in range(attempts):
        problems: list[str] = page.problems  # type: ignore[attr-defined]
        problems.clear()
        if attempt == 0:
            page.goto(url)
        else:
            page.reload()
        deadline = time.monotonic() + timeout_ms / 1000
        while True:
            try:
                ready(SLICE_MS)
                return
            except PlaywrightTimeout:
                aborted = any("ERR_NETWORK_CHANGED" in p for p in problems)
                if aborted and attempt < attempts - 1:
                    break  # load it again now
                if time.monotonic() > deadline:
                    raise


def shot(page: Page, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path))
    return path
