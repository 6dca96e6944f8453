"""The Science Portal in a real browser, on an instance with sign-in (`up --auth`): sign in, launch from
the form, connect, renew, save as image, delete, share with a group, refuse outsiders, phone-sized screens."""

from __future__ import annotations

import json
import re
import shlex
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import docker
import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.browser.helpers import shot, sign_in
from tests.instance import Instance, Person

pytestmark = pytest.mark.slow


def test_sign_in_launch_connect_renew_save_delete(
    secured: Instance, people: dict[str, Person], page: Page, docker_client: docker.DockerClient
) -> None:
    alice = people["alice"]
    sign_in(page, secured, alice)
    expect(page.get_by_role("heading", name="Active sessions")).to_be_visible()
    page.get_by_label("Type").select_option("notebook")
    page.get_by_label("Container image").select_option("localhost/skaha-emulator/notebook:latest")
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
    # Save as image, after the confirmation: the image's name is said, and the launch form's menu offers it.
    page.once("dialog", lambda dialog: dialog.accept())
    card.get_by_role("button", name="Save portal-nb as an image").click()
    expect(page.locator("#message")).to_contain_text("saved as image snapshot/alice/", timeout=60_000)
    saved = re.search(r"saved as image (\S+): choose", page.locator("#message").inner_text())
    assert saved is not None
    try:
        assert saved.group(1).startswith("snapshot/alice/notebook:portal-nb-")
        expect(page.locator(f'#image option[value="{saved.group(1)}"]')).to_have_count(1)
    finally:
        docker_client.images.remove(saved.group(1), force=True)
    # Delete, after the confirmation.
    page.once("dialog", lambda dialog: dialog.accept())
    card.get_by_role("button", name="Delete portal-nb").click()
    expect(page.locator(".card", has_text="portal-nb")).to_have_count(0, timeout=30_000)
    shot(page, "portal-after-delete")


def test_launch_errors_appear_inline(secured: Instance, people: dict[str, Person], page: Page) -> None:
    sign_in(page, secured, people["eve"])
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


# Bob's page: what a page served from a session tries against its visitor (issue 20, finding 1).
ATTACK = (Path(__file__).parent / "origin_attack.html").read_text()


def test_a_page_in_a_group_members_session_cannot_act_as_its_visitor(
    secured: Instance, people: dict[str, Person], page: Page
) -> None:
    """Issue 20's attack, step by step, in a real browser: bob serves a page from his notebook; alice, who
    shares his group, opens it signed in. Each thing it tries is refused, and nothing of hers changes."""
    api = {
        name: httpx.Client(
            base_url=f"{secured.url}/skaha/v0", headers={"Authorization": f"Bearer {people[name].token}"}, timeout=30
        )
        for name in ("alice", "bob")
    }
    notebook = {"name": "x", "image": "skaha-emulator/notebook:latest", "type": "notebook"}
    ids = {name: api[name].post("/session", data=notebook).text.strip() for name in api}
    try:
        deadline = time.monotonic() + 120
        while any(api[n].get(f"/session/{i}").json()["status"] != "Running" for n, i in ids.items()):
            assert time.monotonic() < deadline, secured.service_logs()
            time.sleep(0.2)
        alices, bobs = ids["alice"], ids["bob"]
        signed = httpx.Client(base_url=secured.url)
        signed.post("/science-portal/login", data={"username": "bob", "password": people["bob"].password})
        html = ATTACK
        for name, value in (
            ("PORTAL", secured.url),
            ("ALICE_HOST", secured.session_host(alices)),
            ("ALICE", alices),
            ("BOBS_COOKIE", signed.cookies["skaha_emulator_session"]),
        ):
            html = html.replace(name, json.dumps(value))
        bobs_notebook = secured.container(bobs)
        secured.exec(bobs, f"mkdir -p /tmp/site && printf '%s' {shlex.quote(html)} > /tmp/site/index.html")
        serve = ["sh", "-c", "cd /tmp/site && exec python3 -m http.server 8000"]
        bobs_notebook.exec_run(serve, detach=True)
        # alice signs in, opens her own notebook (its host gets her visit cookie), then bob's page.
        sign_in(page, secured, people["alice"])
        expect(page.get_by_role("heading", name="Active sessions")).to_be_visible()
        lab = page.context.new_page()
        lab.goto(api["alice"].get(f"/session/{alices}").json()["connectURL"])
        expect(lab).to_have_title(re.compile("JupyterLab"), timeout=60_000)
        lab.close()
        before = {s["id"] for s in api["alice"].get("/session").json()}  # an earlier test's may still be ending
        bobs_page = page.context.new_page()
        for _ in range(50):  # until his server listens
            bobs_page.goto(f"{secured.session_host(bobs)}/session/notebook/{bobs}/proxy/8000/")
            if bobs_page.title() == "bob's page":
                break
            time.sleep(0.2)
        bobs_page.wait_for_function("window.done === true", timeout=30_000)
        results = bobs_page.evaluate("window.results")
        assert results["read the dashboard"].startswith("refused"), results
        assert results["read the API"].startswith("refused"), results
        assert results["read her notebook"].startswith("refused"), results
        assert results["reach her notebook through this host"] == 404, results
        # What a page cannot read, it might still send: nothing it sent took effect.
        assert api["alice"].get(f"/session/{alices}").status_code == 200  # not deleted
        after = {s["id"] for s in api["alice"].get("/session").json()}
        assert alices in after and after <= before  # nothing launched
        terminals = httpx.get(
            f"{secured.url}/session/notebook/{alices}/api/terminals?token={alices}",
            headers={"Authorization": f"Bearer {people['alice'].token}"},
            timeout=10,
        )
        assert terminals.status_code == 200 and terminals.json() == [], terminals.text
        # alice is still herself in the portal, whatever cookies the page wrote.
        page.goto(f"{secured.url}/science-portal/")
        expect(page.locator("body")).to_contain_text("alice")
        expect(page.locator("body")).not_to_contain_text("bob")
        shot(bobs_page, "origin-attack-refused")
    finally:
        for name, session_id in ids.items():
            api[name].delete(f"/session/{session_id}")
