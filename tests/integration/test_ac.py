"""CADC's access service at /ac (api/ac.py), as CANFAR's Science Portal 2.0 signs in through it, on the instance
with sign-in on: the token /ac/login answers opens the API and /ac/whoami, the cookie it sets opens the user's own
sessions from a browser (here through the session's own host, as `secured` serves sessions) and no stranger's."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from urllib.parse import quote

import docker
import httpx
import pytest

from emulator.gateway.base import PORTAL_COOKIE as COOKIE
from emulator.gateway.base import VISIT_PATH
from tests.factories import TEST_IMAGES, build_test_image, remove_test_image, worker_image_tag
from tests.instance import Instance, Person, localhost_client

pytestmark = pytest.mark.slow

CONTRACT_APP = worker_image_tag("contract-app")
NAVIGATE = {
    "Accept": "text/html",
    "Sec-Fetch-Site": "cross-site",
    "Sec-Fetch-Mode": "navigate",
    "Sec-Fetch-Dest": "document",
}


def _login(instance: Instance, name: str, secret: str) -> httpx.Response:
    return httpx.post(f"{instance.url}/ac/login", data={"username": name, "password": secret}, timeout=30)


def _audit(instance: Instance) -> list[dict[str, object]]:
    return [json.loads(line) for line in (instance.state_dir / "audit.log").read_text().splitlines()]


def test_login_answers_the_api_token_which_opens_the_api_and_whoami(
    secured: Instance, people: dict[str, Person]
) -> None:
    alice = people["alice"]
    for secret in (alice.password, alice.token):
        answer = _login(secured, "alice", secret)
        assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/plain"), answer.text
        assert answer.text == alice.token
        cookie = answer.headers["set-cookie"]
        assert cookie.startswith(f"{COOKIE}=") and "HttpOnly" in cookie and "SameSite=lax" in cookie
        assert "Domain" not in cookie  # host-only: every port of this host (a portal on another port) shares it
    bearer = {"Authorization": f"Bearer {answer.text}"}
    assert httpx.get(f"{secured.url}/skaha/v1/session", headers=bearer, timeout=30).status_code == 200
    who = httpx.get(f"{secured.url}/ac/whoami", headers={**bearer, "Accept": "application/json"}, timeout=30)
    assert who.status_code == 200 and who.headers["content-type"] == "application/json", who.text
    document = who.json()
    assert document["posixDetails"]["username"]["$"] == "alice"
    assert document["identities"]["$"] == [{"identity": {"@type": "HTTP", "$": "alice"}}]
    assert document["posixDetails"]["homeDirectory"]["$"] == "/arc/home/alice"
    # The real portal forwards its browser's cookies: the cookie alone answers too.
    by_cookie = httpx.get(f"{secured.url}/ac/whoami", cookies={COOKIE: answer.cookies[COOKIE]}, timeout=30)
    assert by_cookie.json()["posixDetails"]["username"]["$"] == "alice"
    for headers in ({}, {"Authorization": "Bearer not-a-token"}, {"Authorization": f"Bearer {people['eve'].token}x"}):
        assert httpx.get(f"{secured.url}/ac/whoami", headers=headers, timeout=30).status_code == 401
    out = httpx.post(f"{secured.url}/ac/logout", cookies={COOKIE: answer.cookies[COOKIE]}, timeout=30)
    assert out.status_code == 200 and f'{COOKIE}=""' in out.headers["set-cookie"]


def test_wrong_credentials_and_bad_input_are_refused_and_no_secret_is_logged(
    secured: Instance, people: dict[str, Person]
) -> None:
    wrong = _login(secured, "bob", "not-his-password")
    assert (
        wrong.status_code == 401 and "invalid username or password" in wrong.text and "set-cookie" not in wrong.headers
    )
    assert _login(secured, "bob", people["alice"].token).status_code == 401  # another user's token is not bob's
    for data in ({}, {"username": "bob"}, {"password": "x"}, {"username": " ", "password": "x"}):
        missing = httpx.post(f"{secured.url}/ac/login", data=data, timeout=30)
        assert missing.status_code == 400 and "both required" in missing.text, (data, missing.text)
    huge = _login(secured, "b" * 100_000, "x")
    assert huge.status_code == 400 and "longer than" in huge.text
    assert _login(secured, "bob", "x" * (2 << 20)).status_code == 413
    lines = _audit(secured)
    assert any(line["action"] == "sign-in-failed" and line.get("user") == "bob" for line in lines)
    assert any(line["action"] == "sign-in" and line["who"] == "alice" for line in lines)
    text = (secured.state_dir / "audit.log").read_text()
    assert "not-his-password" not in text and people["alice"].password not in text


@pytest.fixture
def restarts_service(secured: Instance) -> Iterator[None]:
    """The throttle counts this test's address, which is every test's: the service forgets it on a restart."""
    yield
    secured.restart_service()


def test_repeated_failures_wait_and_say_so(secured: Instance, restarts_service: None) -> None:
    name = "ac-throttled"  # no user's name: its line says "(unknown user)"
    # Earlier tests' failures from this address count too: the wait comes at the 30th failure in a minute at most.
    answers = [_login(secured, name, "wrong") for _ in range(30)]
    codes = [a.status_code for a in answers]
    assert 429 in codes and set(codes[: codes.index(429)]) <= {401}, codes
    waits = answers[codes.index(429)]
    assert waits.status_code == 429 and "try again in" in waits.text
    assert 0 < int(waits.headers["Retry-After"]) <= 60
    failed = [
        line for line in _audit(secured) if line["action"] == "sign-in-failed" and line.get("user") == "(unknown user)"
    ]
    assert failed and failed[-1]["outcome"] == "throttled"


def _running(api: httpx.Client, session_id: str) -> None:
    deadline = time.monotonic() + 120
    while api.get(f"/session/{session_id}").json()["status"] != "Running":
        assert time.monotonic() < deadline
        time.sleep(0.2)


def test_the_login_cookie_opens_ones_own_session_and_no_strangers(
    secured: Instance, people: dict[str, Person], docker_client: docker.DockerClient
) -> None:
    """As a portal on another port of this host hands it on: the browser, signed in at /ac/login, is given a
    ticket for its own session's host (where sessions have hosts of their own; else the cookie opens the route
    itself), and none for a stranger's."""
    build_test_image(docker_client, CONTRACT_APP, path=str(TEST_IMAGES / "contract-app"))
    apis = {
        name: httpx.Client(
            base_url=f"{secured.url}/skaha/v1", headers={"Authorization": f"Bearer {people[name].token}"}, timeout=30
        )
        for name in ("eve", "alice")
    }
    ids: dict[str, str] = {}
    try:
        for name, api in apis.items():
            launched = api.post("/session", data={"name": "ac", "image": CONTRACT_APP, "type": "contributed"})
            assert launched.status_code == 200, launched.text
            ids[name] = launched.text.strip()
        _running(apis["eve"], ids["eve"])
        browser = localhost_client(headers=NAVIGATE)
        browser.cookies.set(COOKIE, _login(secured, "eve", people["eve"].password).cookies[COOKIE])
        path = f"/session/contrib/{ids['eve']}/"
        own_host = secured.session_host(ids["eve"])
        ticketed = browser.get(f"{secured.url}/science-portal/visit?session={ids['eve']}&next={quote(path, safe='')}")
        assert ticketed.status_code == 303, ticketed.text
        assert ticketed.headers["location"].startswith(f"{own_host}{VISIT_PATH}?ticket=")
        assert browser.get(ticketed.headers["location"]).status_code == 303
        assert browser.get(own_host + path).status_code == 200
        stranger = browser.get(f"{secured.url}/science-portal/visit?session={ids['alice']}&next=%2F")
        assert stranger.status_code == 403
    finally:
        for name, session_id in ids.items():
            apis[name].delete(f"/session/{session_id}")
        remove_test_image(docker_client, CONTRACT_APP)
