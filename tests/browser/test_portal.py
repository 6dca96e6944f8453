"""The Science Portal in a real browser, on an instance with sign-in (`up --auth`): sign in, launch from
the form, connect, renew, delete, share with a group, refuse outsiders, phone-sized screens."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.browser.helpers import shot
from tests.conftest import Person
from tests.instance import Instance

pytestmark = pytest.mark.slow


def _sign_in(page: Page, instance: Instance, person: Person, start: str = "/") -> None:
    page.goto(f"{instance.url}{start}")
    page.get_by_label("User name").fill(person.name)
    page.get_by_label("Password or API token").fill(person.password)
    page.get_by_role("button", name="Sign in").click()


def test_sign_in_launch_connect_renew_delete(secured: Instance, people: dict[str, Person], page: Page) -> None:
    alice = people["alice"]
    _sign_in(page, secured, alice)
    expect(page.get_by_role("heading", name="Active sessions")).to_be_visible()
    page.get_by_label("Type").select_option("notebook")
    page.get_by_label("Container image").select_option("skaha-emulator/notebook:latest")
    page.get_by_label("Session name").fill("portal-nb")
    page.get_by_role("button", name="Launch").click()
    card = page.locator(".card", has_text="portal-nb")
    expect(card.locator(".chip")).to_have_text("Running", timeout=120_000)
    shot(page, "portal-running")
    session_id = card.get_attribute("data-id")
    # Connect opens JupyterLab in a new tab, through the gateway's check (the cookie is alice's).
    with page.context.expect_page() as opened:
        card.get_by_role("link", name="Connect").click()
    lab = opened.value
    lab.wait_for_load_state()
    expect(lab).to_have_title(re.compile("JupyterLab"), timeout=60_000)
    lab.close()
    # Renew: the expiry shown moves (the row is set to expire in two hours first, which the card warns of).
    soon = (datetime.now(UTC) + timedelta(hours=2)).replace(microsecond=0).isoformat()
    secured.sql("UPDATE sessions SET expiry_time = ? WHERE id = ?", soon, session_id)
    page.locator("[data-refresh]").click()
    expect(card.locator("dd.warn")).to_contain_text(re.compile(r"\((1 h 59|2 h 0) min left\)"))
    card.get_by_role("button", name="Renew portal-nb").click()
    expect(page.locator("#message")).to_contain_text("renewed: expires")
    expect(card.locator("dd", has_text=re.compile(r"\((3 d 23|4 d 0) h left\)"))).to_be_visible()
    # Events and logs open in a dialog, with their line breaks.
    card.get_by_role("button", name="Events of portal-nb").click()
    expect(page.locator("#text-view pre")).to_contain_text("Ready")
    page.locator("#text-view").get_by_role("button", name="Close").click()
    # Delete, after the confirmation.
    page.once("dialog", lambda dialog: dialog.accept())
    card.get_by_role("button", name="Delete portal-nb").click()
    expect(page.locator(".card", has_text="portal-nb")).to_have_count(0, timeout=30_000)
    shot(page, "portal-after-delete")


def test_launch_errors_appear_inline(secured: Instance, people: dict[str, Person], page: Page) -> None:
    _sign_in(page, secured, people["eve"])
    page.get_by_label("Session name").fill("bad_name")
    page.get_by_role("button", name="Launch").click()
    expect(page.locator("#launch-error")).to_have_text("name can only contain alpha-numeric chars and '-'")


def test_a_shared_url_opens_for_the_group_and_not_for_others(
    secured: Instance, people: dict[str, Person], browser: Browser
) -> None:
    alice = httpx.Client(
        base_url=f"{secured.url}/skaha/v0", headers={"Authorization": f"Bearer {people['alice'].token}"}, timeout=30
    )
    session_id = alice.post(
        "/session", data={"name": "shared", "image": "skaha-emulator/notebook:latest", "type": "notebook"}
    ).text.strip()
    deadline = time.monotonic() + 120
    while alice.get(f"/session/{session_id}").json()["status"] != "Running":
        assert time.monotonic() < deadline
        time.sleep(0.2)
    url = alice.get(f"/session/{session_id}").json()["connectURL"]
    try:
        for name, phone in (("bob", False), ("eve", True)):
            context = browser.new_context(viewport={"width": 390, "height": 844} if phone else None)
            page = context.new_page()
            # No cookie yet: the session's URL sends the browser to sign in, and back afterwards.
            page.goto(url)
            expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
            page.get_by_label("User name").fill(name)
            page.get_by_label("Password or API token").fill(people[name].password)
            page.get_by_role("button", name="Sign in").click()
            page.wait_for_load_state()
            if name == "bob":  # alice's group: her JupyterLab opens for him
                expect(page).to_have_title(re.compile("JupyterLab"), timeout=60_000)
                shot(page, "portal-shared-with-group")
            else:
                expect(page.locator("body")).to_contain_text("not yours")
                page.goto(f"{secured.url}/science-portal/")
                shot(page, "portal-phone")
                width = page.evaluate("document.documentElement.scrollWidth")
                assert width <= 390, width  # nothing wider than the phone
                page.get_by_role("button", name="Sign out").click()
                expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
            context.close()
    finally:
        alice.delete(f"/session/{session_id}")
