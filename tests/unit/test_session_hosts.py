"""Sessions on hosts of their own: where they are, the tickets and cookies that admit a visitor there, and the
portal refusing what another site's page makes a browser send. (The gateway's behaviour is proved against real
Caddy in tests/integration/test_origins.py; the real browser's in tests/browser/test_origins.py.)"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from starlette.requests import Request

from emulator.api.access import platform_cookie
from emulator.api.origin import from_elsewhere
from emulator.core.signin import TICKET_SECONDS, SignIns, cookie_name
from emulator.errors import ConfigError
from emulator.gateway.base import PORTAL_COOKIE as COOKIE
from emulator.session_hosts import SessionHosts, for_scripts
from emulator.settings import load_settings


def test_on_loopback_each_session_gets_a_localhost_host_with_the_portals_scheme_and_port() -> None:
    settings = load_settings(port=18080)
    assert settings.session_hosts == SessionHosts("localhost", "http", 18080)
    assert settings.session_url("abcdefgh") == "http://abcdefgh.localhost:18080"
    assert load_settings(tls=True, port=8443).session_url("abcdefgh") == "https://abcdefgh.localhost:8443"


def test_elsewhere_the_operator_names_the_domain_or_sessions_stay_on_the_portals_host() -> None:
    assert load_settings(host="0.0.0.0").session_hosts is None
    assert load_settings(host="0.0.0.0").session_url("abcdefgh") == "http://0.0.0.0:8080"
    named = load_settings(host="0.0.0.0", session_domain="Sessions.Example.org.", public_url="https://example.org")
    assert named.session_url("abcdefgh") == "https://abcdefgh.sessions.example.org"
    assert named.session_hosts is not None and named.session_hosts.id_label == 3  # Caddy counts from the right
    assert load_settings(session_domain="none").session_hosts is None
    assert load_settings(session_domain="none").as_environment()["EMULATE_SESSION_DOMAIN"] == "none"  # the service's
    with pytest.raises(ConfigError, match="EMULATE_SESSION_DOMAIN='exa mple.org': a DNS name"):
        load_settings(session_domain="exa mple.org")
    with pytest.raises(ConfigError, match="the portal's own host emulator.example.org would be taken for a session's"):
        load_settings(public_url="https://emulator.example.org", session_domain="example.org")


def test_scripts_open_a_localhost_session_host_through_the_portals_host() -> None:
    url = "http://abcdefgh.localhost:8080/session/notebook/abcdefgh/lab?token=t"
    assert for_scripts(url, "http://127.0.0.1:8080") == "http://127.0.0.1:8080/session/notebook/abcdefgh/lab?token=t"
    named = "https://abcdefgh.sessions.example.org/session/carta/abcdefgh/"
    assert for_scripts(named, "https://example.org") == named  # a real name resolves


def test_a_ticket_admits_once_to_the_one_session_it_was_made_for(tmp_path: Path) -> None:
    signins = SignIns(tmp_path / "key")
    ticket = signins.ticket("alice", "fp", "abcdefgh")
    assert signins.redeem(ticket, "zzzzzzzz") is None  # another session's host
    assert signins.redeem(ticket, "abcdefgh") == ("alice", "fp")
    assert signins.redeem(ticket, "abcdefgh") is None  # spent
    stale = signins.ticket("alice", "fp", "abcdefgh", now=time.time() - TICKET_SECONDS - 1)
    assert signins.redeem(stale, "abcdefgh") is None
    forged = ticket.replace("alice", "bobby")
    assert signins.redeem(forged, "abcdefgh") is None


def test_no_kind_of_token_passes_for_another(tmp_path: Path) -> None:
    signins = SignIns(tmp_path / "key")
    portal = signins.issue("alice", "fp")
    visit = signins.visit("alice", "fp", "abcdefgh")
    ticket = signins.ticket("alice", "fp", "abcdefgh")
    assert signins.visitor(visit, "abcdefgh") == ("alice", "fp")
    assert signins.visitor(visit, "zzzzzzzz") is None  # a visit cookie is good for its own session alone
    assert signins.user_of(visit) is None and signins.user_of(ticket) is None  # neither signs in to the portal
    assert signins.visitor(portal, "abcdefgh") is None and signins.visitor(ticket, "abcdefgh") is None
    assert signins.redeem(visit, "abcdefgh") is None
    assert SignIns(tmp_path / "other-key").visitor(visit, "abcdefgh") is None


def test_cookies_are_host_prefixed_over_https() -> None:
    assert cookie_name("skaha_emulator_session", secure=True) == "__Host-skaha_emulator_session"
    assert cookie_name("skaha_emulator_session", secure=False) == "skaha_emulator_session"


def _headers(**values: str) -> dict[bytes, bytes]:
    return {k.replace("_", "-").lower().encode(): v.encode() for k, v in values.items()}


NAVIGATE = {"Sec_Fetch_Mode": "navigate", "Sec_Fetch_Dest": "document"}


@pytest.mark.parametrize(
    ("method", "headers", "refused"),
    [
        ("GET", {"Sec_Fetch_Site": "same-origin", "Sec_Fetch_Mode": "cors"}, False),  # the portal's own script
        ("POST", {"Sec_Fetch_Site": "same-origin", "Origin": "http://127.0.0.1:8080"}, False),  # its own form
        ("GET", {"Sec_Fetch_Site": "none", **NAVIGATE}, False),  # typed in, a bookmark
        ("GET", {"Sec_Fetch_Site": "cross-site", **NAVIGATE}, False),  # a link on a session's page
        ("GET", {}, False),  # a script: curl, the canfar client
        ("POST", {}, False),
        ("GET", {"Sec_Fetch_Site": "cross-site", "Sec_Fetch_Mode": "cors"}, True),  # fetch() to read the dashboard
        ("GET", {"Sec_Fetch_Site": "cross-site", "Sec_Fetch_Mode": "navigate", "Sec_Fetch_Dest": "iframe"}, True),
        ("POST", {"Sec_Fetch_Site": "cross-site", **NAVIGATE}, True),  # a form posted at the portal
        ("POST", {"Sec_Fetch_Site": "same-site", "Sec_Fetch_Mode": "no-cors"}, True),  # another port of this host
        ("GET", {"Sec_Fetch_Site": "same-site", "Sec_Fetch_Mode": "no-cors", "Sec_Fetch_Dest": "image"}, True),
        ("POST", {"Origin": "http://abcdefgh.localhost:8080"}, True),  # a browser without fetch metadata
        ("POST", {"Origin": "null"}, True),  # a sandboxed frame, a data: page
    ],
)
def test_the_portal_answers_its_own_pages_and_scripts_only(method: str, headers: dict[str, str], refused: bool) -> None:
    assert from_elsewhere(method, {**_headers(**headers), b"host": b"127.0.0.1:8080"}) is refused


def test_a_sessions_host_refuses_what_another_sessions_page_sends_even_a_get() -> None:
    """An operator's <id>.<domain> hosts are one site to a browser: its SameSite cookies go along with what one
    session's page sends another, so on a session's host any Origin but its own is refused."""
    host = {b"host": b"abcdefgh.sessions.example.org"}
    websocket = {b"origin": b"https://zzzzzzzz.sessions.example.org", **host}
    assert from_elsewhere("GET", websocket, any_origin_header=True)
    assert not from_elsewhere("GET", websocket)  # the portal's rule: a GET may carry any Origin
    own = {b"origin": b"https://abcdefgh.sessions.example.org", b"sec-fetch-site": b"same-origin", **host}
    assert not from_elsewhere("GET", own, any_origin_header=True)
    same_site = {b"sec-fetch-site": b"same-site", b"sec-fetch-mode": b"no-cors", **host}
    assert from_elsewhere("POST", same_site, any_origin_header=True)


def test_an_origin_that_is_no_url_is_refused_not_a_server_error() -> None:
    assert from_elsewhere("POST", {b"origin": b"http://[", b"host": b"127.0.0.1:8080"})


def _request(cookie: str) -> Request:
    return Request({"type": "http", "method": "GET", "path": "/", "headers": [(b"cookie", cookie.encode())]})


def test_a_second_platform_cookie_beside_the_first_is_no_sign_in() -> None:
    """A page elsewhere can plant the cookie for a parent domain or a longer path; the browser then sends both."""
    assert platform_cookie(_request("a=1; skaha_emulator_session=alice|f|9|s"), COOKIE) == "alice|f|9|s"
    planted = "skaha_emulator_session=bob|f|9|s; skaha_emulator_session=alice|f|9|s"
    assert platform_cookie(_request(planted), COOKIE) == ""
    assert platform_cookie(_request("other=1"), COOKIE) == ""
