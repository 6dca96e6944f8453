"""CANFAR's own Science Portal 2.0, unchanged, against an emulator instance of its own, driven in Chromium:
sign in, launch a notebook from its form, see it Running, read its events and logs, renew it, connect to it
in a new tab, delete it, sign out. Opt-in (`make test-portal2 SCIENCE_PORTAL_SRC=...`), see README's
"Run CANFAR's own portal against it"."""

from __future__ import annotations

import os
import re
from urllib.parse import unquote

import httpx
import pytest

if not os.environ.get("SCIENCE_PORTAL_SRC"):
    pytest.skip("SCIENCE_PORTAL_SRC is unset (a science-portal source folder)", allow_module_level=True)

from playwright.sync_api import Locator, Page, Route, expect

from tests.browser.helpers import problems, shot
from tests.instance import Instance, Person
from tests.portal2.build import PINNED_COMMIT
from tests.portal2.conftest import Portal

pytestmark = [pytest.mark.portal2, pytest.mark.slow]

NAME = "portaltwo"  # the session the journey launches
TOKEN_KEY = "canfar_auth_token"  # where the portal keeps the Bearer token (src/lib/auth/token-storage.ts)
LOGOUT = "https://www.canfar.net/access/logout"  # hard-coded in the portal for any origin off canfar.net
LAUNCH_MS = 180_000  # JupyterLab's first start on a busy 2-core machine


def sign_in(page: Page, portal: Portal, person: Person) -> None:
    page.goto(portal.url)
    opener = page.get_by_role("button", name="Login", exact=True)
    submit = page.get_by_role("button", name="Submit login")
    expect(opener.or_(submit).first).to_be_visible(timeout=30_000)
    if not submit.is_visible():  # the portal opens its login dialog by itself when it finds no one signed in
        opener.click()
    page.locator("#login-username").fill(person.name)
    page.locator("#login-password").fill(person.password)
    page.get_by_role("button", name="Submit login").click()
    expect(account_menu(page, person)).to_be_visible(timeout=30_000)
    assert page.evaluate(f"localStorage.getItem('{TOKEN_KEY}')"), "the portal kept no token"


def account_menu(page: Page, person: Person) -> Locator:
    """The header's button with the user's name (and last name), which opens the menu that has Logout."""
    return page.get_by_role("button", name=re.compile(f"^{re.escape(person.name)}\\b"))


def choose(page: Page, select_id: str, option: str) -> None:
    """Pick `option` in one of the launch form's MUI selects."""
    page.locator(f"#{select_id}").click()
    page.get_by_role("option", name=option, exact=True).click()


def launch(page: Page, instance: Instance, person: Person) -> str:
    """Launch a notebook from the portal's form; its session id, once the card says Running."""
    choose(page, "session-project", "skaha-emulator")
    choose(page, "session-image", "notebook:latest")
    page.locator("#session-name").fill(NAME)
    with page.expect_response(lambda r: r.url.endswith("/api/sessions") and r.request.method == "POST") as made:
        page.get_by_role("button", name="Launch", exact=True).click()
    assert made.value.ok, made.value.text()
    card = page.get_by_role("link", name=f"Open session {NAME}")
    expect(card.get_by_text("Running", exact=True)).to_be_visible(timeout=LAUNCH_MS)
    (found,) = [s for s in own_sessions(instance, person) if s["name"] == NAME]
    return str(found["id"])


def own_sessions(instance: Instance, person: Person) -> list[dict[str, object]]:
    """The person's sessions, as the API tells them (not through the portal)."""
    answer = httpx.get(f"{instance.url}/skaha/v1/session", headers={"Authorization": f"Bearer {person.token}"})
    assert answer.status_code == 200, answer.text
    sessions: list[dict[str, object]] = answer.json()
    return sessions


def read_events_and_logs(page: Page) -> None:
    card = page.get_by_role("link", name=f"Open session {NAME}")
    for button, path in (("View events", "/events"), ("View logs", "/logs")):
        with page.expect_response(re.compile(f"/api/sessions/[^/]+{path}")) as answered:
            card.get_by_role("button", name=button).click()
        assert answered.value.ok, f"{button}: {answered.value.status} {answered.value.text()[:300]}"
        expect(page.get_by_role("dialog")).to_be_visible()
        page.keyboard.press("Escape")
        expect(page.get_by_role("dialog")).to_be_hidden()


def renew(page: Page) -> None:
    card = page.get_by_role("link", name=f"Open session {NAME}")
    with page.expect_response(lambda r: r.url.endswith("/renew") and r.request.method == "POST") as answered:
        card.get_by_role("button", name="Extend time").click()
    assert answered.value.ok, f"renew: {answered.value.status} {answered.value.text()[:300]}"
    page.keyboard.press("Escape")
    expect(card.get_by_text("Running", exact=True)).to_be_visible(timeout=30_000)


def connect(page: Page) -> None:
    """The card opens the session in a new tab; with sign-in on, the cookie the sign-in set lets it in."""
    with page.context.expect_page() as opened:
        page.get_by_role("link", name=f"Open session {NAME}").click()
    tab = opened.value
    try:
        expect(tab).to_have_title(re.compile("JupyterLab"), timeout=60_000)
    finally:
        shot(tab, "portal2-connect")
        tab.close()


def delete(page: Page, instance: Instance, session_id: str) -> None:
    page.get_by_role("link", name=f"Open session {NAME}").get_by_role("button", name="Delete session").click()
    page.get_by_role("dialog").get_by_role("button", name="Delete", exact=True).click()
    expect(page.get_by_role("link", name=f"Open session {NAME}")).to_be_hidden(timeout=60_000)
    instance.wait_gone(session_id)


def sign_out(page: Page, portal: Portal, person: Person) -> None:
    """Its logout clears the token, then leaves for canfar.net: that request is answered here, never sent."""
    left: list[str] = []

    def answer_here(route: Route) -> None:
        left.append(route.request.url)
        route.fulfill(body="signed out")

    page.route(f"{LOGOUT}*", answer_here)
    account_menu(page, person).click()
    page.get_by_role("menuitem", name="Logout").click()
    page.wait_for_url(f"{LOGOUT}*")
    assert left and unquote(left[0]).endswith(f"?target={portal.url}/"), left
    page.goto(portal.url)
    # Only the token goes: the cookie /ac/login set stays (canfar.net's logout, never reached, clears
    # CANFAR's), so the portal, which forwards cookies to /ac/whoami, still finds the user signed in.
    assert page.evaluate(f"localStorage.getItem('{TOKEN_KEY}')") is None


def test_the_real_portal_runs_a_notebook_from_sign_in_to_sign_out(
    page: Page, portal: Portal, instance: Instance, person: Person
) -> None:
    if portal.built.source != PINNED_COMMIT:
        print(f"note: this portal is {portal.built.source}, not the pinned {PINNED_COMMIT}")
    sign_in(page, portal, person)
    try:
        session_id = launch(page, instance, person)
        read_events_and_logs(page)
        renew(page)
        connect(page)
        delete(page, instance, session_id)
    finally:
        shot(page, "portal2-dashboard")
    # Before leaving: the navigation away cuts off the portal's calls in flight, which is no fault.
    assert problems(page) == [], "\n".join(problems(page))
    sign_out(page, portal, person)
