"""The access service's answers (api/ac.py) on the service's app with its real sign-in parts, no engine: the user
document's shape, the token and cookie of /ac/login, and that /ac and the portal share one back-off."""

from __future__ import annotations

from pathlib import Path

from emulator.api.ac import user_document
from emulator.core.models import Group, User
from emulator.gateway.base import PORTAL_COOKIE as COOKIE
from tests.unit.test_audit import _lines, _portal


def test_the_user_document_is_cadcs_badgerfish_shape() -> None:
    document = user_document(User("ada", 20001, 20002, (Group("astro", 30000),)))
    assert document == {
        "internalID": {"uri": {"$": "ivo://skaha-emulator/user?ada"}},
        "identities": {"$": [{"identity": {"@type": "HTTP", "$": "ada"}}]},
        "personalDetails": {"firstName": {"$": "ada"}, "lastName": {"$": "Emulated"}},
        "posixDetails": {
            "username": {"$": "ada"},
            "uid": {"$": 20001},
            "gid": {"$": 20002},
            "homeDirectory": {"$": "/arc/home/ada"},
        },
    }


def test_login_answers_the_users_token_and_the_portals_cookie_which_whoami_takes(tmp_path: Path) -> None:
    client, password = _portal(tmp_path)
    answer = client.post("/ac/login", data={"username": "ada", "password": password})
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/plain")
    token = answer.text
    assert client.post("/ac/login", data={"username": "ada", "password": token}).text == token  # the token signs in
    who = client.get("/ac/whoami", headers={"Authorization": f"Bearer {token}"})
    assert who.status_code == 200 and who.json()["posixDetails"]["username"] == {"$": "ada"}
    assert client.get("/ac/whoami").json()["posixDetails"]["username"] == {"$": "ada"}  # the cookie it set
    assert client.post("/ac/logout").status_code == 200 and COOKIE not in client.cookies  # cleared
    assert client.get("/ac/whoami").status_code == 401
    assert client.get("/ac/whoami", headers={"Authorization": f"Bearer {token}x"}).status_code == 401
    assert [e["action"] for e in _lines(tmp_path / "audit.log")] == ["sign-in", "sign-in", "logout"]


def test_ac_and_the_portal_share_the_back_off_and_bad_input_is_told(tmp_path: Path) -> None:
    client, password = _portal(tmp_path)  # its throttle waits from the third wrong password on
    for _ in range(2):
        assert client.post("/ac/login", data={"username": "ada", "password": "wrong"}).status_code == 401
    waits = client.post("/science-portal/login", data={"username": "ada", "password": password})
    assert waits.status_code == 429
    again = client.post("/ac/login", data={"username": "ada", "password": password})
    assert again.status_code == 429 and 0 < int(again.headers["retry-after"]) <= 60 and "try again in" in again.text
    assert client.post("/ac/login", data={"username": "ada"}).status_code == 400  # not an attempt: no line
    assert client.post("/ac/login", data={"username": "a" * 300, "password": "x"}).status_code == 400
    lines = [(e["action"], e["outcome"], e.get("user")) for e in _lines(tmp_path / "audit.log")]
    assert lines == [
        ("sign-in-failed", "failed", "ada"),
        ("sign-in-failed", "failed", "ada"),
        ("sign-in-failed", "throttled", "ada"),
    ]
    counted = client.app.state.metrics.registry.get_sample_value  # type: ignore[attr-defined]
    assert counted("skaha_emulator_signin_failures_total", {"reason": "throttled"}) == 2
    assert counted("skaha_emulator_signin_failures_total", {"reason": "wrong-password"}) == 2
