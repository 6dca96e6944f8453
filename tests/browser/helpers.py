"""Real-browser plumbing shared by the browser tests: Debian's chromium through Playwright, pages that
report what went wrong inside them, loads that survive Docker's network changes, sign-in, and screenshots."""

from __future__ import annotations

import time
import weakref
from collections.abc import Callable
from pathlib import Path

from playwright.sync_api import Page
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from tests.instance import ARTIFACTS, Instance, Person

CHROMIUM = "/usr/bin/chromium"
SLICE_MS = 2_000  # how often a page that is not ready yet is checked for an aborted load
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]

_PROBLEMS: weakref.WeakKeyDictionary[Page, list[str]] = weakref.WeakKeyDictionary()


def watch(page: Page) -> None:
    """Keep what goes wrong in `page` (console errors, failed or refused requests) for `problems`."""
    seen = _PROBLEMS.setdefault(page, [])
    page.on("console", lambda m: seen.append(f"console {m.type}: {m.text[:300]}") if m.type == "error" else None)
    page.on("requestfailed", lambda r: seen.append(f"request failed ({r.failure}): {r.url}"))
    page.on("response", lambda r: seen.append(f"HTTP {r.status}: {r.url}") if r.status >= 400 else None)


def problems(page: Page) -> list[str]:
    """What went wrong so far in a page `watch` watches (the `page` fixture's)."""
    return _PROBLEMS[page]


def open_page(
    page: Page, url: str, ready: Callable[[float], None], timeout_ms: float = 30_000, attempts: int = 3
) -> None:
    """Load `url` until `ready(ms)` (which waits at most `ms` milliseconds) passes within `timeout_ms`.

    Chromium aborts requests in flight with ERR_NETWORK_CHANGED whenever a network interface comes or
    goes on this host, and Docker adds one per container it starts. A page load that met such an
    abort is loaded again at once (what was cut off would never come); any other failure fails the test.
    """
    for attempt in range(attempts):
        seen = problems(page)
        seen.clear()
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
                aborted = any("ERR_NETWORK_CHANGED" in p for p in seen)
                if aborted and attempt < attempts - 1:
                    break  # load it again now
                if time.monotonic() > deadline:
                    raise


def shot(page: Page, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path))
    return path


def sign_in(page: Page, instance: Instance, person: Person, start: str = "/") -> None:
    page.goto(f"{instance.url}{start}")
    page.get_by_label("User name").fill(person.name)
    page.get_by_label("Password or API token").fill(person.password)
    page.get_by_role("button", name="Sign in").click()
    # The page it lands on, with its scripts run: a form used before its script is wired posts without it.
    page.wait_for_load_state("load")
