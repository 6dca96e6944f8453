"""Sign-in and who may open what, on an instance started with `up --auth` (as any shared server is)."""

from __future__ import annotations

import http.client
import time
from urllib.parse import quote, urlparse

import httpx
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from emulator.core.identity import load_directory
from emulator.core.signin import SignIns
from emulator.gateway.base import PORTAL_COOKIE as COOKIE
from emulator.gateway.base import VISIT_COOKIE, VISIT_PATH
from tests.instance import Instance, Person, localhost_client

pytestmark = pytest.mark.slow

IMAGE = "skaha-emulator/notebook:latest"


def _api(instance: Instance, person: Person) -> httpx.Client:
    return httpx.Client(
        base_url=f"{instance.url}/skaha/v0", headers={"Authorization": f"Bearer {person.token}"}, timeout=30
    )


def _signed_in(instance: Instance, person: Person, secret: str | None = None) -> httpx.Client:
    browser = httpx.Client(base_url=instance.url, timeout=30)
    answer = browser.post(
        "/science-portal/login", data={"username": person.name, "password": secret or person.password, "next": "/x"}
    )
    assert answer.status_code == 303 and answer.headers["location"] == "/x", answer.text
    return browser


@pytest.fixture(scope="module")
def alices_notebook(secured: Instance, people: dict[str, Person]) -> str:
    api = _api(secured, people["alice"])
    session_id = api.post("/session", data={"name": "shared", "image": IMAGE, "type": "notebook"}).text.strip()
    deadline = time.monotonic() + 120
    while api.get(f"/session/{session_id}").json()["status"] != "Running":
        assert time.monotonic() < deadline, secured.service_logs()
        time.sleep(0.2)
    return session_id


def test_session_routes_open_for_the_owner_and_her_group_only(
    secured: Instance, people: dict[str, Person], alices_notebook: str
) -> None:
    url = f"{secured.url}/session/notebook/{alices_notebook}/api/status?token={alices_notebook}"
    for name, wanted in (("alice", 200), ("bob", 200), ("eve", 403)):
        answer = httpx.get(url, headers={"Authorization": f"Bearer {people[name].token}"}, timeout=10)
        assert answer.status_code == wanted, (name, answer.status_code, answer.text)
    assert httpx.get(url, timeout=10).status_code == 401  # a script without credentials
    # A browser is sent to the session's own host, whether it says so (fetch metadata) or only shows the
    # portal's cookie; there the portal's cookie opens nothing (see the tests below).
    host = secured.session_host(alices_notebook)
    for headers in ({"Accept": "text/html"}, {"Sec-Fetch-Mode": "navigate", "Sec-Fetch-Site": "none"}):
        sent = httpx.get(url, headers=headers, timeout=10)
        assert sent.status_code == 307 and sent.headers["location"] == host + url.split(secured.url)[1]
    assert _signed_in(secured, people["bob"]).get(url).headers["location"].startswith(host)


def test_websockets_are_checked_too(secured: Instance, people: dict[str, Person], alices_notebook: str) -> None:
    kernel = httpx.post(
        f"{secured.url}/session/notebook/{alices_notebook}/api/kernels?token={alices_notebook}",
        headers={"Authorization": f"Bearer {people['alice'].token}"},
        json={},
        timeout=30,
    ).json()
    path = f"/session/notebook/{alices_notebook}/api/kernels/{kernel['id']}/channels?token={alices_notebook}"
    ws_url = f"ws://{secured.url.removeprefix('http://')}{path}"
    with connect(ws_url, open_timeout=15, additional_headers={"Authorization": f"Bearer {people['bob'].token}"}):
        pass  # bob shares alice's group
    with pytest.raises(InvalidStatus) as refused:
        connect(ws_url, open_timeout=15, additional_headers={"Authorization": f"Bearer {people['eve'].token}"})
    assert refused.value.response.status_code == 403


def test_the_platforms_credentials_never_reach_the_session(
    secured: Instance, people: dict[str, Person], alices_notebook: str
) -> None:
    # Jupyter sees neither the bearer token (so it asks for its own token) nor the portal's cookie.
    bare = f"{secured.url}/session/notebook/{alices_notebook}/api/kernels"
    assert httpx.get(bare, headers={"Authorization": f"Bearer {people['alice'].token}"}).status_code == 403
    seen = secured.container(alices_notebook).exec_run(["sh", "-c", "cat /proc/1/cmdline"]).output
    assert people["alice"].token.encode() not in seen


def test_through_the_api_nobody_sees_anothers_sessions(
    secured: Instance, people: dict[str, Person], alices_notebook: str
) -> None:
    eve = _api(secured, people["eve"])
    assert eve.get(f"/session/{alices_notebook}").status_code == 404
    assert eve.post(f"/session/{alices_notebook}", data={"action": "renew"}).status_code == 400
    assert eve.delete(f"/session/{alices_notebook}").status_code == 403
    assert eve.post(f"/session/{alices_notebook}/app", data={"image": IMAGE}).status_code == 404
    assert alices_notebook not in {s["id"] for s in eve.get("/session").json()}
    assert _api(secured, people["bob"]).get(f"/session/{alices_notebook}").status_code == 404  # not via the API


def test_sign_in_out_wrong_password_and_expired_cookie(secured: Instance, people: dict[str, Person]) -> None:
    browser = httpx.Client(base_url=secured.url, timeout=30)
    wrong = browser.post("/science-portal/login", data={"username": "alice", "password": "not-it"})
    assert wrong.status_code == 401 and "Wrong user name or password." in wrong.text
    assert browser.get("/").headers["location"] == "/science-portal/"
    assert browser.get("/science-portal/").headers["location"].startswith("/science-portal/login")
    signed = _signed_in(secured, people["alice"], people["alice"].token)  # the API token signs in too
    page = signed.get("/science-portal/")
    assert page.status_code == 200 and "Active sessions" in page.text and len(page.content) < 200_000
    set_cookie = signed.post("/science-portal/login", data={"username": "alice", "password": people["alice"].password})
    assert "HttpOnly" in set_cookie.headers["set-cookie"] and "SameSite=lax" in set_cookie.headers["set-cookie"]
    # A form without the page's token is refused (another site cannot post as alice).
    assert signed.post("/science-portal/launch", data={"type": "notebook"}).status_code == 401
    # The second sign-in may have minted a new cookie (its time is inside it): the form token is for the current one.
    csrf = SignIns(secured.state_dir / "signin.key").form_token(signed.cookies[COOKIE])
    out = signed.post("/science-portal/logout", data={"csrf": csrf})
    assert out.status_code == 303 and COOKIE not in signed.cookies
    # An expired cookie is no sign-in, and login never sends anyone off this site.
    fingerprint = load_directory(secured.users_file).fingerprint("alice")
    stale = SignIns(secured.state_dir / "signin.key").issue("alice", fingerprint, now=time.time() - 2 * 86400)
    expired = httpx.get(f"{secured.url}/science-portal/", cookies={COOKIE: stale})
    assert expired.headers["location"].startswith("/science-portal/login")
    away = httpx.post(
        f"{secured.url}/science-portal/login",
        data={"username": "alice", "password": people["alice"].password, "next": "//evil.example/"},
    )
    assert away.headers["location"] == "/science-portal/"


def test_group_projects_are_the_groups(secured: Instance, people: dict[str, Person], alices_notebook: str) -> None:
    project = secured.arc_dir / "projects" / "astro"
    assert project.is_dir() and project.stat().st_mode & 0o7777 == 0o2770
    assert secured.exec(alices_notebook, "touch /arc/projects/astro/shared.txt && echo ok").strip() == "ok"


def test_the_check_asks_about_the_session_the_request_reaches(
    secured: Instance, people: dict[str, Person], alices_notebook: str
) -> None:
    eve = _api(secured, people["eve"])
    evesession = eve.post("/session", data={"name": "e", "image": IMAGE, "type": "notebook"}).text.strip()
    try:
        address = urlparse(secured.url)
        for path in (
            f"/session/notebook/{evesession}/../{alices_notebook}/api/status?token={alices_notebook}",
            f"/session/notebook/{evesession}/%2e%2e/{alices_notebook}/api/status?token={alices_notebook}",
        ):
            connection = http.client.HTTPConnection(address.netloc, timeout=10)
            connection.request("GET", path, headers={"Authorization": f"Bearer {people['eve'].token}"})
            answer = connection.getresponse()
            body = answer.read()
            connection.close()
            assert answer.status in (403, 404), (path, answer.status, body)  # never alice's Jupyter
        forged = {"Authorization": f"Bearer {people['eve'].token}", "X-Skaha-Emulator-Probe": "x" * 64}
        url = f"{secured.url}/session/notebook/{alices_notebook}/api/status?token={alices_notebook}"
        assert httpx.get(url, headers=forged, timeout=10).status_code == 403
        connection = http.client.HTTPConnection(address.netloc, timeout=10)
        odd_path = f"/session/notebook/{alices_notebook}/api/status"
        connection.request("GET", odd_path, headers={"Cookie": f"{COOKIE}=alice|é|1|x", "Accept": "text/html"})
        assert connection.getresponse().status == 307  # a browser: to the session's own host, and no 500
        connection.close()
        # There the service itself reads the malformed cookie (the portal's cookie above the gateway answers alone)
        odd_visit = f"{VISIT_COOKIE}=alice|é|1|x".encode("latin-1")
        asked = localhost_client(headers=NAVIGATE).get(
            secured.session_host(alices_notebook) + odd_path, headers={b"Cookie": odd_visit}
        )
        visit = f"{secured.url}/science-portal/visit?session={alices_notebook}&next={quote(odd_path, safe='')}"
        assert (asked.status_code, asked.headers.get("location")) == (302, visit), asked.text  # sign in first
    finally:
        eve.delete(f"/session/{evesession}")


def test_a_new_password_ends_old_sign_ins_and_login_stays_on_site(secured: Instance, people: dict[str, Person]) -> None:
    carol = secured.emulate("users", "add", "carol").stdout
    password = next(line.split(": ", 1)[1] for line in carol.splitlines() if line.startswith("password: "))
    browser = _signed_in(secured, Person("carol", password.strip(), ""))
    assert browser.get("/science-portal/").status_code == 200
    secured.emulate("users", "passwd", "carol")
    assert browser.get("/science-portal/").headers["location"].startswith("/science-portal/login")
    elsewhere = httpx.post(
        f"{secured.url}/science-portal/login",
        data={"username": "alice", "password": people["alice"].password},
        headers={"Origin": "http://evil.example"},
    )
    assert elsewhere.status_code == 403
    secured.emulate("users", "rm", "carol")


def test_a_shared_server_pulls_only_from_the_registries_it_allows(secured: Instance, people: dict[str, Person]) -> None:
    """Any launch makes the engine connect to the registry it names: on a shared server, not to one the
    operator did not list (this instance lists loopback alone), and nothing is left behind."""
    api = _api(secured, people["bob"])
    before = secured.rows()
    for image in ("10.0.0.1:5000/scan:1", "169.254.169.254/latest:1", "ghcr.io/someone/image:1"):
        refused = api.post("/session", data={"name": "x", "image": image, "type": "headless"})
        assert refused.status_code == 400 and "the registries allowed are 127.0.0.1" in refused.text, refused.text
    assert secured.rows() == before


def test_a_shared_server_mounts_no_host_folder(secured: Instance, people: dict[str, Person]) -> None:
    """`emulate dev --mount` on a laptop; on a shared server a stranger would mount the host's folders."""
    before = secured.rows()
    wanted = {"name": "x", "image": "skaha-emulator/notebook:latest", "type": "notebook", "mount": "/etc:/opt/etc"}
    refused = _api(secured, people["bob"]).post("/session", data=wanted)
    assert refused.status_code == 400 and "mount: this platform is shared" in refused.text, refused.text
    assert secured.rows() == before


NAVIGATE = {
    "Accept": "text/html",
    "Sec-Fetch-Site": "cross-site",
    "Sec-Fetch-Mode": "navigate",
    "Sec-Fetch-Dest": "document",
}


def _visit(secured: Instance, person: Person, session_id: str, path: str) -> tuple[httpx.Client, httpx.Response]:
    """What a browser does to open `path` on the session's own host: that host sends it to the portal, which
    (signed in) hands it a ticket for the host, which sets its own cookie. Each step is checked."""
    client = localhost_client(headers=NAVIGATE)
    host = secured.session_host(session_id)
    first = client.get(host + path)
    visit = f"{secured.url}/science-portal/visit?session={session_id}&next={quote(path, safe='')}"
    assert first.status_code == 302 and first.headers["location"] == visit, first.text
    signed = _signed_in(secured, person)
    ticketed = signed.get(visit, headers=NAVIGATE)
    if ticketed.status_code != 303:
        return client, ticketed
    ticket_url = ticketed.headers["location"]
    assert ticket_url.startswith(f"{host}{VISIT_PATH}?ticket="), ticket_url
    landed = client.get(ticket_url)
    assert landed.status_code == 303 and landed.headers["location"] == path, landed.text
    cookie = landed.headers["set-cookie"]
    assert cookie.startswith(f"{VISIT_COOKIE}=") and "HttpOnly" in cookie and "SameSite=lax" in cookie
    assert "Domain" not in cookie  # this host only: no other session's host, nor the portal, ever gets it
    spent = localhost_client().get(ticket_url)
    assert spent.status_code == 403 and "spent" in spent.text  # a ticket admits once
    return client, client.get(host + path)


def test_a_browser_opens_a_session_on_its_own_host_through_the_portal(
    secured: Instance, people: dict[str, Person], alices_notebook: str
) -> None:
    path = f"/session/notebook/{alices_notebook}/api/status?token={alices_notebook}"
    bob, opened = _visit(secured, people["bob"], alices_notebook, path)  # bob shares alice's group
    assert opened.status_code == 200 and "started" in opened.text, opened.text
    _, refused = _visit(secured, people["eve"], alices_notebook, path)
    assert refused.status_code == 403
    # Not signed in at the portal: it asks for a sign-in first, and comes back to the visit.
    visit = f"{secured.url}/science-portal/visit?session={alices_notebook}&next=%2F"
    stranger = localhost_client().get(visit, headers=NAVIGATE)
    assert stranger.status_code == 303 and stranger.headers["location"].startswith("/science-portal/login?next=")
    # The visit cookie opens that session's host alone: not the portal, not the API, not another path's session.
    visit_cookie = bob.cookies[VISIT_COOKIE]
    assert localhost_client().get(f"{secured.url}/science-portal/", cookies={COOKIE: visit_cookie}).status_code == 303
    host = secured.session_host(alices_notebook)
    for where in ("/science-portal/", "/skaha/v0/session", "/session/notebook/zzzzzzzz/api/status"):
        assert bob.get(host + where).status_code == 404, where
    # What another session's page makes bob's browser send here is refused, cookie or not (on an operator's
    # domain all session hosts are one site, and SameSite cookies go along): a WebSocket, a no-cors post.
    elsewhere = secured.session_host("zzzzzzzz")
    assert bob.get(host + path, headers={"Origin": elsewhere, "Sec-Fetch-Site": "same-site"}).status_code == 403
    assert bob.get(host + path, headers={"Origin": elsewhere}).status_code == 403
    assert bob.get(host + path, headers={"Origin": host, "Sec-Fetch-Site": "same-origin"}).status_code == 200
    # The portal's cookie opens nothing on a session's host (it is never sent there; sent by hand, still nothing).
    portal_cookie = _signed_in(secured, people["alice"]).cookies[COOKIE]
    as_script = localhost_client().get(host + path, cookies={COOKIE: portal_cookie})
    assert as_script.status_code == 401
    # Anyone's visit cookie for one session is nothing on another session's host (a cookie planted by a page).
    eve = _api(secured, people["eve"])
    eves = eve.post("/session", data={"name": "e", "image": IMAGE, "type": "notebook"}).text.strip()
    try:
        eves_path = f"/session/notebook/{eves}/api/status"
        planted = localhost_client().get(secured.session_host(eves) + eves_path, cookies={VISIT_COOKIE: visit_cookie})
        assert planted.status_code == 401
    finally:
        eve.delete(f"/session/{eves}")


def test_the_portal_and_the_api_refuse_what_another_sites_page_sends(
    secured: Instance, people: dict[str, Person]
) -> None:
    signed = _signed_in(secured, people["alice"])
    csrf = SignIns(secured.state_dir / "signin.key").form_token(signed.cookies[COOKIE])
    api = _api(secured, people["alice"])
    before = sorted(s["id"] for s in api.get("/session").json())
    elsewhere = {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "no-cors", "Sec-Fetch-Dest": "empty"}
    launched = signed.post("/science-portal/launch", data={"csrf": csrf, "type": "notebook"}, headers=elsewhere)
    assert launched.status_code == 403 and "own pages" in launched.text
    read = signed.get("/science-portal/", headers={**elsewhere, "Sec-Fetch-Mode": "cors"})
    assert read.status_code == 403
    assert api.get("/session", headers={**elsewhere, "Sec-Fetch-Mode": "cors"}).status_code == 403
    assert api.post("/session", data={"image": IMAGE}, headers={"Origin": "http://x.localhost"}).status_code == 403
    assert sorted(s["id"] for s in api.get("/session").json()) == before
    framed = signed.get("/science-portal/", headers={**NAVIGATE, "Sec-Fetch-Dest": "iframe"})
    assert framed.status_code == 403
    followed = signed.get("/science-portal/", headers=NAVIGATE)  # a link on another site's page: allowed
    assert followed.status_code == 200 and followed.headers["content-security-policy"] == "frame-ancestors 'none'"
