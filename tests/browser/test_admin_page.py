"""The admin page in a real browser, on the signed-in instance: boss (an admin) sees three users' sessions,
filters and sorts them, renews one, deletes one, deletes all of one user's and then every session, each bulk
delete behind its typed confirmation; an ordinary user sees no link to it and is refused it."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from playwright.sync_api import Locator, Page, expect

from tests.browser.helpers import shot, sign_in
from tests.instance import Instance, Person
from tests.jobs import delete_jobs, sleeping_jobs

pytestmark = pytest.mark.slow


def test_an_admin_acts_on_everyones_sessions_from_the_page(
    secured: Instance, people: dict[str, Person], page: Page
) -> None:
    jobs = sleeping_jobs(secured, people, {"alice": 2, "bob": 1, "eve": 1})
    try:
        _walk(secured, page, people["boss"], jobs)
    finally:
        delete_jobs(secured, people, jobs)


def _walk(secured: Instance, page: Page, boss: Person, jobs: dict[str, list[str]]) -> None:
    def row(session_id: str) -> Locator:
        return page.locator(f'tr[data-ref="{session_id}"]')

    sign_in(page, secured, boss)
    page.get_by_role("link", name="Admin").click()
    expect(page.get_by_role("heading", name="Every session")).to_be_visible()
    for ids in jobs.values():
        for session_id in ids:
            expect(row(session_id)).to_be_visible()
    expect(page.locator(".shares")).to_contain_text("alice")
    shot(page, "admin-page")

    # Filter by user, and sort: query parameters (the address keeps them, the polled rows follow them).
    page.get_by_label("User", exact=True).select_option("alice")
    page.get_by_role("button", name="Show").click()
    expect(page).to_have_url(re.compile(r"user=alice"))
    expect(page.locator("tr[data-ref]")).to_have_count(2)
    page.get_by_role("link", name="Age", exact=True).click()
    expect(page).to_have_url(re.compile(r"sort=age"))
    expect(page.get_by_role("columnheader", name="Age", exact=True)).to_have_attribute("aria-sort", "ascending")
    expect(page.locator("tr[data-ref]")).to_have_count(2)
    page.get_by_label("User", exact=True).select_option("")
    page.get_by_role("button", name="Show").click()

    # Renew bob's job, set to end within the hour: the time left shows four days, and its events say who.
    bobs = jobs["bob"][0]
    soon = (datetime.now(UTC) + timedelta(hours=1)).replace(microsecond=0).isoformat()
    secured.sql("UPDATE sessions SET expiry_time = ? WHERE id = ?", soon, bobs)
    page.locator("[data-refresh]").click()
    expect(row(bobs).locator("td.warn")).to_have_text(re.compile(r"^(0 h 59 min|1 h 0 min)$"))
    row(bobs).get_by_role("button", name="Renew bob-job0 of bob").click()
    expect(page.locator("#message")).to_contain_text("renewed bob-job0 of bob: expires")
    expect(row(bobs).locator("td").nth(6)).to_have_text(re.compile(r"^(3 d 23 h|4 d 0 h)$"))
    row(bobs).get_by_role("link", name="Events of bob-job0 of bob").click()
    expect(page.locator("#text-view pre")).to_contain_text("by admin boss")
    page.locator("#text-view").get_by_role("button", name="Close").click()

    # Delete eve's, once the dialog is accepted.
    eves = jobs["eve"][0]
    page.once("dialog", lambda dialog: dialog.accept())
    row(eves).get_by_role("button", name="Delete eve-job0 of eve").click()
    expect(row(eves)).to_have_count(0, timeout=30_000)

    # All of alice's: a wrong name is refused in words, hers goes ahead.
    page.get_by_label("Delete all of a user's sessions").select_option("alice")
    page.get_by_label("Type the user's name to confirm").fill("alcie")
    page.get_by_role("button", name="Delete all of this user's sessions").click()
    refusal = "Not deleted: to delete every session of alice, type 'alice' to confirm"
    expect(page.locator("#message")).to_have_text(refusal)
    expect(row(jobs["alice"][0])).to_be_visible()
    page.get_by_label("Type the user's name to confirm").fill("alice")
    page.get_by_role("button", name="Delete all of this user's sessions").click()
    expect(page.locator("#message")).to_contain_text("deleted 2 session(s) of alice")
    for session_id in jobs["alice"]:
        expect(row(session_id)).to_have_count(0)
    expect(row(bobs)).to_be_visible()

    # Every session: only with the word typed.
    page.get_by_label(re.compile("Delete every session of every user")).fill("everything")
    page.get_by_role("button", name="Delete every session").click()
    expect(page.locator("#message")).to_contain_text("deleted every session")
    expect(page.locator("tr[data-ref]")).to_have_count(0)
    shot(page, "admin-page-emptied")


def test_an_ordinary_user_has_no_admin_link_and_is_refused_the_page(
    secured: Instance, people: dict[str, Person], page: Page
) -> None:
    sign_in(page, secured, people["eve"])
    expect(page.get_by_role("heading", name="Active sessions")).to_be_visible()
    expect(page.get_by_role("link", name="Admin")).to_have_count(0)
    answer = page.goto(f"{secured.url}/science-portal/admin")
    assert answer is not None and answer.status == 403
    assert httpx.get(f"{secured.url}/science-portal/admin", timeout=30).status_code == 303  # not signed in
