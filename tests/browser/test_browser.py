"""Real-browser tests: Playwright driving Debian's chromium (headless) through the gateway.

Screenshots are kept in test-artifacts/ for a person to look at.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from PIL import Image
from playwright.sync_api import Page

from tests.browser.helpers import open_page, shot
from tests.instance import Instance

pytestmark = pytest.mark.slow


def test_jupyterlab_runs_a_cell(fresh: Instance, page: Page) -> None:
    session_id = fresh.launch(name="browser")
    user = fresh.session(session_id)["userid"]
    base = f"{fresh.url}/session/notebook/{session_id}"
    created = httpx.put(
        f"{base}/api/contents/arc/home/{user}/browser.ipynb",
        headers={"Authorization": f"token {session_id}"},
        json={
            "type": "notebook",
            "format": "json",
            "content": {
                "cells": [],
                "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
                "nbformat": 4,
                "nbformat_minor": 5,
            },
        },
        timeout=10,
    )
    assert created.status_code in (200, 201), created.text
    try:
        # Type only once the kernel is idle: keystrokes sent while the notebook still loads are lost.
        open_page(
            page,
            f"{base}/lab/tree/arc/home/{user}/browser.ipynb?token={session_id}",
            lambda ms: page.get_by_text("Python 3 (ipykernel) | Idle").wait_for(timeout=ms),
            timeout_ms=60_000,
        )
        editor = page.locator(".jp-Notebook .jp-Cell .cm-content").first
        editor.click()
        page.keyboard.type("1+1")
        page.wait_for_function(
            "document.querySelector('.jp-Notebook .jp-Cell .cm-content')?.textContent === '1+1'", timeout=10_000
        )
        page.keyboard.press("Shift+Enter")
        output = page.locator(".jp-OutputArea-output").first
        output.wait_for(timeout=60_000)
        assert output.inner_text().strip() == "2"
    finally:
        shot(page, "jupyterlab-cell")


def _tk_grey(path: Path) -> int:
    """Pixels of Tk's default background (#d9d9d9), which DS9's window is mostly made of."""
    rgb = Image.open(path).convert("RGB").tobytes()  # r, g, b, r, g, b, ...
    pixels = zip(rgb[0::3], rgb[1::3], rgb[2::3], strict=True)
    return sum(1 for r, g, b in pixels if abs(r - 217) <= 3 and abs(g - 217) <= 3 and abs(b - 217) <= 3)


def test_the_desktop_shows_in_novnc_and_then_shows_ds9(fresh: Instance, page: Page) -> None:
    session_id = fresh.launch(name="desk", type="desktop", image="skaha-emulator/desktop:latest")
    url = fresh.session(session_id)["connectURL"]

    def connected(ms: float) -> None:
        page.wait_for_function("document.getElementById('status')?.textContent.startsWith('Connected')", timeout=ms)
        time.sleep(1)  # the first full frame

    open_page(page, url, connected, timeout_ms=20_000)
    before = _tk_grey(shot(page, "desktop-before-ds9"))
    app_id = fresh.http.post(f"/session/{session_id}/app", data={"image": "skaha-emulator/ds9:latest"}).text.strip()
    deadline = time.monotonic() + 60
    while "SAOImage ds9" not in fresh.exec(session_id, "xwininfo -root -tree"):
        assert time.monotonic() < deadline, "DS9 never opened a window"
        time.sleep(0.3)
    time.sleep(1)  # let DS9 draw its window
    # A fresh view: the app's container start may have reset the page's connection.
    open_page(page, url, connected, timeout_ms=20_000)
    after = _tk_grey(shot(page, "desktop-with-ds9"))
    assert fresh.http.get(f"/session/{session_id}/app/{app_id}").json()["status"] == "Running"
    # DS9's window (about 750 x 780 pixels, mostly Tk grey) now covers part of the desktop.
    assert before < 5_000 and after > 60_000, (before, after)


def test_the_contributed_app_page_renders(fresh: Instance, page: Page) -> None:
    session_id = fresh.launch(name="marimo", type="contributed", image="skaha-emulator/marimo:latest")
    try:
        # marimo's home page lists "Create a new notebook" once its frontend has started and talked to its server.
        open_page(
            page,
            fresh.session(session_id)["connectURL"],
            lambda ms: page.get_by_text("Create a new notebook").wait_for(timeout=ms),
        )
    finally:
        shot(page, "contributed-marimo")
