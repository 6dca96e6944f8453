"""The admin API and pages on a signed-in instance: an admin sees and acts on everyone's sessions; nobody else
(another user, a session's own token, even an admin's session's token) reaches any admin route."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute

from emulator.api.app import create_app
from emulator.core.signin import SignIns
from emulator.gateway.base import PORTAL_COOKIE as COOKIE
from emulator.settings import Settings
from tests.instance import Instance, Person
from tests.jobs import api, delete_jobs, sleeping_jobs

pytestmark = pytest.mark.slow

# Every route under these is an admin's alone (the room's banner, which every user reads, is GET
# /skaha/v1/broadcast: outside them).
ADMIN_PREFIXES = ("/skaha/v1/admin", "/science-portal/admin", "/metrics")


def signed_in(instance: Instance, person: Person) -> tuple[httpx.Client, str]:
    """A browser-like client signed in as `person`, and the token its page's forms carry."""
    browser = httpx.Client(base_url=instance.url, timeout=30)
    answer = browser.post("/science-portal/login", data={"username": person.name, "password": person.password})
    assert answer.status_code == 303, answer.text
    return browser, SignIns(instance.state_dir / "signin.key").form_token(browser.cookies[COOKIE])


def session_token(instance: Instance, session_id: str) -> str:
    """The token code inside a session holds (its CANFAR_TOKEN)."""
    env: list[str] = instance.container(session_id).attrs["Config"]["Env"]
    return next(entry.split("=", 1)[1] for entry in env if entry.startswith("CANFAR_TOKEN="))


@pytest.fixture(scope="module")
def room(secured: Instance, people: dict[str, Person]) -> Iterator[dict[str, list[str]]]:
    """alice's two jobs, bob's one, eve's two and boss's own one."""
    launched = sleeping_jobs(secured, people, {"alice": 2, "bob": 1, "eve": 2, "boss": 1})
    yield launched
    delete_jobs(secured, people, launched)


def test_an_admin_sees_everyones_sessions_and_acts_on_them(
    secured: Instance, people: dict[str, Person], room: dict[str, list[str]]
) -> None:
    boss = api(secured, people["boss"].token)
    listed = boss.get("/admin/sessions")
    assert listed.status_code == 200, listed.text
    rows = {row["ref"]: row for row in listed.json()}
    mine = {session_id: name for name, ids in room.items() for session_id in ids}
    assert set(mine) <= set(rows)
    for session_id, name in mine.items():
        row = rows[session_id]
        assert (row["userid"], row["status"], row["type"]) == (name, "Running", "headless")
        assert row["latestEvent"]["reason"] == "Running", row
        assert row["requested"]["cpuCores"] > 0 and row["ageSeconds"] >= 0 and row["secondsLeft"] > 0
        assert row["lastActivity"] is None and row["desktop"] is None
    only_alice = boss.get("/admin/sessions", params={"user": "alice", "status": "Running", "sort": "age"}).json()
    assert {row["ref"] for row in only_alice} >= set(room["alice"]) and {r["userid"] for r in only_alice} == {"alice"}
    assert boss.get("/admin/sessions", params={"status": "Sleeping"}).status_code == 400

    # Delete one of eve's: gone for her too.
    eve, gone = api(secured, people["eve"].token), room["eve"][0]
    assert boss.delete(f"/admin/sessions/{gone}").json() == {"deleted": [gone]}
    assert eve.get(f"/session/{gone}").status_code == 404
    assert {s["id"] for s in eve.get("/session").json()} >= {room["eve"][1]}

    # Renew bob's, set to expire in an hour: four days from now, and his events say which admin did it.
    bobs = room["bob"][0]
    soon = (datetime.now(UTC) + timedelta(hours=1)).replace(microsecond=0).isoformat()
    secured.sql("UPDATE sessions SET expiry_time = ? WHERE id = ?", soon, bobs)
    renewed = boss.post(f"/admin/sessions/{bobs}", data={"action": "renew"})
    assert renewed.status_code == 200, renewed.text
    expiry = datetime.fromisoformat(renewed.json()["expiryTime"].replace("Z", "+00:00"))
    assert timedelta(days=3, hours=23) < expiry - datetime.now(UTC) <= timedelta(days=4)
    bob = api(secured, people["bob"].token)
    assert bob.get(f"/session/{bobs}").json()["expiryTime"] == renewed.json()["expiryTime"]
    assert "by admin boss" in bob.get(f"/session/{bobs}", params={"view": "events"}).text

    # All of alice's, once her name is typed again.
    refused = boss.delete("/admin/sessions", params={"user": "alice", "confirm": "alcie"})
    assert refused.status_code == 400 and "type 'alice' to confirm" in refused.text
    deleted = boss.delete("/admin/sessions", params={"user": "alice", "confirm": "alice"})
    assert deleted.status_code == 200 and set(deleted.json()["deleted"]) >= set(room["alice"])
    assert api(secured, people["alice"].token).get("/session").json() == []

    # What is not there is said so.
    assert boss.delete("/admin/sessions/nosuchid").text == "no session nosuchid\n"
    assert boss.post("/admin/sessions/nosuchid", data={"action": "renew"}).status_code == 404
    assert boss.delete("/admin/sessions", params={"user": "nobody", "confirm": "nobody"}).text == "no user nobody\n"
    assert boss.delete("/admin/sessions", params={"all": "true", "confirm": "all"}).status_code == 400
    assert bob.get(f"/session/{bobs}").status_code == 200  # nothing refused took anything

    audit = [json.loads(line) for line in (secured.state_dir / "audit.log").read_text().splitlines()]
    done = {(line["action"], line.get("session") or line.get("user"), line["outcome"]) for line in audit}
    assert {
        ("admin-delete", gone, "ok"),
        ("admin-renew", bobs, "ok"),
        ("admin-delete-user", "alice", "ok"),
        ("admin-delete-user", "alice", "refused"),
        ("admin-delete", "nosuchid", "refused"),
    } <= done
    assert all(line["who"] == "boss" for line in audit if line["action"].startswith("admin-"))
    # A refusal's line says why in its first words, as every other verb's does.
    refusals = [line for line in audit if line["outcome"] == "refused"]
    why = {(line["action"], line.get("session") or line.get("user")): line.get("reason") for line in refusals}
    assert why[("admin-delete", "nosuchid")] == "no session nosuchid"
    assert str(why[("admin-delete-user", "alice")]).startswith("to delete"), why


def _routes(routes: Iterable[BaseRoute], prefix: str = "") -> Iterator[tuple[str, str]]:
    """(method, path) of every route, those of included routers too: FastAPI 0.16x keeps an included router
    whole (its routes under `original_router`, the include's own prefix beside them); older ones copied them."""
    for route in routes:
        inner = getattr(route, "original_router", None)
        if inner is not None:
            yield from _routes(inner.routes, prefix + route.include_context.prefix)  # type: ignore[attr-defined]
        elif isinstance(route, APIRoute):
            yield from ((method, prefix + route.path) for method in sorted(route.methods or ()))


def _admin_routes() -> list[tuple[str, str]]:
    """Every (method, path) of the app under the admin prefixes: a route added later is checked too."""
    found = [
        (method, path)
        for method, path in _routes(create_app(Settings(), "unused", "unused").routes)
        if path.startswith(ADMIN_PREFIXES)
    ]
    assert len(found) >= 11, found  # the API's 5 and the page's 6, at least
    return found


def test_nobody_but_an_admin_reaches_an_admin_route(
    secured: Instance, people: dict[str, Person], room: dict[str, list[str]]
) -> None:
    target = room["eve"][-1]  # a session that exists: a refusal is never just "not found"
    tokens = {
        "eve's token": people["eve"].token,
        "eve's session's token": session_token(secured, target),
        "boss's session's token": session_token(secured, room["boss"][0]),
    }
    browsers = {
        "alice signed in": signed_in(secured, people["alice"]),
        "bob signed in": signed_in(secured, people["bob"]),
    }
    for method, path in _admin_routes():
        url = path.replace("{ref}", target).replace("{view}", "events")
        # What an admin would send for it to go ahead: a refusal is the caller's, never the request's.
        typed = "everything" if "everything" in url else "eve"
        fields = {"action": "renew", "user": "eve", "confirm": typed, "confirmed": "yes"}
        if not url.startswith("/science-portal/"):  # the API and /metrics take tokens, never the portal cookie
            for who, token in tokens.items():
                answer = httpx.request(method, f"{secured.url}{url}", params=fields, headers=_bearer(token), timeout=30)
                assert answer.status_code == 403, (who, method, url, answer.text)
            assert httpx.request(method, f"{secured.url}{url}", params=fields, timeout=30).status_code == 401, url
        else:
            for who, (browser, csrf) in browsers.items():
                answer = browser.request(method, url, data={**fields, "csrf": csrf} if method == "POST" else None)
                assert answer.status_code == 403, (who, method, url, answer.text)
            anonymous = httpx.request(method, f"{secured.url}{url}", timeout=30)
            assert anonymous.status_code in ((303,) if url == "/science-portal/admin" else (401,)), (method, url)
    assert api(secured, people["eve"].token).get(f"/session/{target}").json()["status"] == "Running"
    assert api(secured, people["boss"].token).get(f"/session/{room['boss'][0]}").status_code == 200


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_the_admin_page_lists_everyone_and_the_dashboard_links_it_for_admins_only(
    secured: Instance, people: dict[str, Person], room: dict[str, list[str]]
) -> None:
    boss, csrf = signed_in(secured, people["boss"])
    page = boss.get("/science-portal/admin")
    assert page.status_code == 200
    for session_id in room["boss"] + room["bob"]:
        assert f'data-ref="{session_id}"' in page.text  # in the first answer, before any script runs
    assert "Each user's share" in page.text and "Usage of ended sessions" in page.text
    fragment = boss.get("/science-portal/admin/fragments/sessions", params={"user": "bob"}).text
    assert f'data-ref="{room["bob"][0]}"' in fragment and f'data-ref="{room["boss"][0]}"' not in fragment
    assert 'href="/science-portal/admin"' in boss.get("/science-portal/").text
    eve, _ = signed_in(secured, people["eve"])
    assert 'href="/science-portal/admin"' not in eve.get("/science-portal/").text
    # Without scripts, a delete asks first on a page of its own, and nothing is gone until it is confirmed.
    asked = boss.post(f"/science-portal/admin/sessions/{room['boss'][0]}/delete", data={"csrf": csrf})
    assert asked.status_code == 200 and "Delete it" in asked.text
    assert api(secured, people["boss"].token).get(f"/session/{room['boss'][0]}").status_code == 200
