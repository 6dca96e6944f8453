"""The room in a real browser, on the signed-in instance: an admin's message reaches another user's open
dashboard without a reload, and a failed session's card relaunches it as it was, or fills the launch form."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from typing import Any

import docker
import httpx
import pytest
from playwright.sync_api import Browser, Page, expect
from prometheus_client.parser import text_string_to_metric_families

from tests.browser.helpers import shot, sign_in, watch
from tests.factories import TEST_IMAGES, build_test_image, remove_test_image, worker_image_tag
from tests.instance import Instance, Person

pytestmark = pytest.mark.slow

NOTICE_WAIT_MS = 12_000  # the dashboard asks for the message every 5 s: twice that, and some


@pytest.fixture(scope="module")
def app_image(docker_client: docker.DockerClient) -> Iterator[str]:
    """The small contract-test app (a contributed type), under a tag of this module's own."""
    tag = build_test_image(docker_client, worker_image_tag("room-app"), path=str(TEST_IMAGES / "contract-app"))
    yield tag
    remove_test_image(docker_client, tag)


def _dashboard(browser: Browser, instance: Instance, person: Person) -> Page:
    page = browser.new_context(viewport={"width": 1400, "height": 900}).new_page()
    watch(page)
    sign_in(page, instance, person)
    expect(page.get_by_role("heading", name="Active sessions")).to_be_visible()
    return page


def _form_post(page: Page, path: str, **fields: str) -> tuple[int, str]:
    """A form post from `page`'s signed-in browser (its cookie and form token), as the page's script sends it."""
    csrf = page.locator("#sessions").get_attribute("data-csrf") or ""
    answer = page.request.post(path, form={"csrf": csrf, **fields}, headers={"X-Requested-With": "portal"})
    return answer.status, answer.text()


def test_the_message_to_the_room_reaches_an_open_dashboard_within_one_refresh(
    secured: Instance, people: dict[str, Person], browser: Browser
) -> None:
    alice = _dashboard(browser, secured, people["alice"])
    boss = _dashboard(browser, secured, people["boss"])
    try:
        expect(alice.locator("#notice .notice")).to_have_count(0)
        expect(alice.locator("#broadcast")).to_have_count(0)  # an ordinary user has no form for it
        text = "We restart at 14:00 <b>sharp</b>"
        boss.get_by_label("Shown at the top of every dashboard").fill(text)
        boss.get_by_role("button", name="Show to everyone").click()
        expect(boss.locator("#message")).to_have_text("shown on every dashboard")
        # alice's page, open all along and never reloaded, shows it at its next look, as text, never HTML.
        expect(alice.locator("#notice .notice-text")).to_have_text(text, timeout=NOTICE_WAIT_MS)
        expect(alice.locator("#notice")).to_contain_text("from boss")
        expect(alice.locator("#notice b")).to_have_count(0)
        shot(alice, "room-message")
        # Her own post to the form's address is refused, and the message stays.
        assert _form_post(alice, f"{secured.url}/science-portal/broadcast", text="mine")[0] == 403
        assert _form_post(alice, f"{secured.url}/science-portal/broadcast/clear")[0] == 403
        boss.get_by_role("button", name="Clear the message").click()
        expect(boss.locator("#message")).to_have_text("the message is taken down")
        expect(alice.locator("#notice .notice")).to_have_count(0, timeout=NOTICE_WAIT_MS)
    finally:
        alice.context.close()
        boss.context.close()


def _wait(api: httpx.Client, session_id: str, wanted: str) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while (session := api.get(f"/session/{session_id}").json())["status"] != wanted:
        assert time.monotonic() < deadline, (session_id, session["status"], wanted)
        time.sleep(0.1)
    return session  # type: ignore[no-any-return]


def _failed_session(instance: Instance, api: httpx.Client, image: str, cores: str, ram: str) -> str:
    """A contributed session with fixed resources that failed: its app killed (SIGKILL: exit code 137, where a
    stop's SIGTERM may let it end cleanly), and not restarted (as an interactive one would be, up to 5 times)."""
    data = {"name": "relaunch-me", "image": image, "type": "contributed", "cores": cores, "ram": ram}
    session_id = api.post("/session", data=data).text.strip()
    _wait(api, session_id, "Running")
    container = instance.container(session_id)
    container.update(restart_policy={"Name": "no"})
    container.kill()
    _wait(api, session_id, "Failed")
    return session_id


def _relaunches(instance: Instance, admin: Person) -> dict[str, float]:
    """/metrics' count of contributed launches by outcome (a relaunch is one)."""
    scraped = httpx.get(f"{instance.url}/metrics", headers={"Authorization": f"Bearer {admin.token}"}, timeout=30)
    (launches,) = [f for f in text_string_to_metric_families(scraped.text) if f.name == "skaha_emulator_launches"]
    return {s.labels["outcome"]: s.value for s in launches.samples if s.labels["type"] == "contributed"}


def test_a_failed_card_relaunches_the_session_as_it_was_and_edit_fills_the_form(
    secured: Instance, people: dict[str, Person], browser: Browser, page: Page, app_image: str
) -> None:
    eve = httpx.Client(
        base_url=f"{secured.url}/skaha/v1", headers={"Authorization": f"Bearer {people['eve'].token}"}, timeout=30
    )
    context = eve.get("/context").json()
    cores, ram = str(min(context["cores"]["options"])), str(min(context["memoryGB"]["options"]))
    old = _failed_session(secured, eve, app_image, cores, ram)
    try:
        sign_in(page, secured, people["eve"])
        card = page.locator(f'.card[data-id="{old}"]')
        expect(card.locator(".chip")).to_have_text("Failed")
        expect(card).to_contain_text("Ended")
        expect(card.locator(".why")).to_contain_text("code 137")
        # Edit and relaunch: the form holds its type, image, name and fixed resources, ready to change.
        card.get_by_role("button", name="Edit and relaunch relaunch-me").click()
        expect(page.get_by_label("Type")).to_have_value("contributed")
        # The menu names the local image as the catalogue does; the session was launched by its engine name.
        expect(page.get_by_label("Container image")).to_have_value(f"localhost/{app_image}")
        expect(page.get_by_label("Session name")).to_have_value("relaunch-me")
        expect(page.get_by_label("Session name")).to_be_focused()
        expect(page.get_by_label("Fixed")).to_be_checked()
        expect(page.locator('select[name="cores"]')).to_have_value(cores)
        expect(page.locator('select[name="ram"]')).to_have_value(ram)
        shot(page, "room-edit-and-relaunch")
        # A relaunch is the owner's alone, of an ended session, and asks for a private image's credentials again.
        counted = _relaunches(secured, people["boss"])
        outsider = _dashboard(browser, secured, people["alice"])
        assert _form_post(outsider, f"{secured.url}/science-portal/sessions/{old}/relaunch")[0] == 404
        outsider.context.close()
        secured.sql("INSERT INTO private_images (key) VALUES (?)", f"ref:{app_image}")
        try:
            status, words = _form_post(page, f"{secured.url}/science-portal/sessions/{old}/relaunch")
        finally:
            secured.sql("DELETE FROM private_images WHERE key = ?", f"ref:{app_image}")
        assert status == 400 and "came from a private registry" in words and "under Advanced" in words, words
        # Relaunch: a new session of the same type, image, name and resources; the failed card stays.
        card.get_by_role("button", name="Relaunch relaunch-me", exact=True).click()
        expect(page.locator("#message")).to_contain_text("Relaunching relaunch-me")
        new = re.search(r"\(([a-z0-9]+)\)", page.locator("#message").inner_text())
        assert new is not None and new.group(1) != old
        expect(page.locator(f'.card[data-id="{new.group(1)}"] .chip')).to_have_text(re.compile("Pending|Running"))
        expect(card.locator(".chip")).to_have_text("Failed")
        again = eve.get(f"/session/{new.group(1)}").json()
        wanted = (app_image, "contributed", "relaunch-me", True, cores, f"{ram}G")
        assert (
            again["image"],
            again["type"],
            again["name"],
            again["isFixedResources"],
            again["requestedCPUCores"],
            again["requestedRAM"],
        ) == wanted
        running = _wait(eve, new.group(1), "Running")
        refused = _form_post(page, f"{secured.url}/science-portal/sessions/{running['id']}/relaunch")
        assert refused == (400, f"session {running['id']} is Running: only a session that has ended is relaunched")
        # Each try has its audit line, refusals too (another's session says nothing of it), and counts as a launch.
        audit = [json.loads(line) for line in (secured.state_dir / "audit.log").read_text().splitlines()]
        said = [e for e in audit if e["action"] == "relaunch" and e.get("previous") in (old, running["id"])]
        assert [(e["who"], e["outcome"], e.get("session"), e.get("image")) for e in said] == [
            ("alice", "refused", None, None),
            ("eve", "refused", None, app_image),
            ("eve", "ok", new.group(1), app_image),
            ("eve", "refused", None, app_image),
        ]
        assert said[-1]["reason"] == f"session {running['id']} is Running" and said[1]["reason"]
        now = _relaunches(secured, people["boss"])
        assert (now["refused"] - counted["refused"], now["ok"] - counted["ok"]) == (2, 1)
    finally:
        for session in eve.get("/session").json():
            eve.delete(f"/session/{session['id']}")
