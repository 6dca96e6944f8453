"""What whoever runs the room sees, on the signed-in instance: the audit log (a line for each action, no secret
in the whole file), /metrics in Prometheus' text format, and usage accounting across a restart of the service;
the last two for admins only."""

from __future__ import annotations

import base64
import json
import secrets
import time
from collections.abc import Iterator
from typing import Any

import docker
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from emulator.core.signin import SignIns
from emulator.gateway.base import PORTAL_COOKIE as COOKIE
from tests.factories import TEST_IMAGES, build_test_image, remove_test_image, worker_image_tag
from tests.instance import Instance, Person
from tests.unit.test_metrics import FAMILIES  # the families /metrics must have, named once

pytestmark = pytest.mark.slow

USAGE = "/skaha/v1/admin/usage"


@pytest.fixture(scope="module")
def job_image(docker_client: docker.DockerClient) -> Iterator[str]:
    """A small headless image (its own command prints a line and ends); `sleep` keeps one running."""
    tag = build_test_image(docker_client, worker_image_tag("observe-job"), path=str(TEST_IMAGES / "headless-job"))
    yield tag
    remove_test_image(docker_client, tag)


def _api(instance: Instance, person: Person | None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {person.token}"} if person else {}
    return httpx.Client(base_url=instance.url, headers=headers, timeout=30)


def _wait(api: httpx.Client, session_id: str, wanted: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while (status := api.get(f"/skaha/v0/session/{session_id}").json()["status"]) != wanted:
        assert time.monotonic() < deadline, f"{session_id} is {status}, not {wanted}"
        time.sleep(0.1)


def _job(api: httpx.Client, image: str, *command: str, **more: Any) -> str:
    data = {"name": "obs", "image": image, "type": "headless", **more}
    if command:
        data |= {"cmd": command[0], "args": " ".join(command[1:])}
    launched = api.post("/skaha/v0/session", data=data)
    assert launched.status_code == 200, launched.text
    return launched.text.strip()


def _audit_lines(instance: Instance) -> tuple[str, list[dict[str, Any]]]:
    """Every audit file's text (the rotated ones too), and the current file's lines."""
    files = sorted(instance.state_dir.glob("audit.log*"))
    text = "".join(f.read_text() for f in files)
    return text, [json.loads(line) for line in (instance.state_dir / "audit.log").read_text().splitlines()]


def _one(lines: list[dict[str, Any]], **wanted: Any) -> dict[str, Any]:
    found = [entry for entry in lines if all(entry.get(k) == v for k, v in wanted.items())]
    assert found, f"no audit line with {wanted}"
    return found[-1]


def _portal_actions(secured: Instance, alice: Person, session_id: str, wrong: str, typo: str) -> list[str]:
    """alice signs in, renews her job from the portal and signs out; then a wrong password is tried as her, and
    her password is typed in the name field (`typo`) and the other way round. The cookie and form token it saw
    (secrets the audit log must not hold)."""
    browser = httpx.Client(base_url=secured.url, timeout=30)
    signed = browser.post("/science-portal/login", data={"username": alice.name, "password": alice.password})
    assert signed.status_code == 303, signed.text
    cookie = browser.cookies[COOKIE]
    csrf = SignIns(secured.state_dir / "signin.key").form_token(cookie)
    portal = {"x-requested-with": "portal"}
    renewed = browser.post(f"/science-portal/sessions/{session_id}/renew", data={"csrf": csrf}, headers=portal)
    assert renewed.status_code == 200 and renewed.text.startswith("renewed"), renewed.text
    assert browser.post("/science-portal/logout", data={"csrf": csrf}).status_code == 303
    refused = browser.post("/science-portal/login", data={"username": alice.name, "password": wrong})
    assert refused.status_code == 401
    swapped = browser.post("/science-portal/login", data={"username": typo, "password": alice.name})
    assert swapped.status_code == 401
    return [cookie, csrf]


def _user_changes(secured: Instance, name: str) -> list[str]:
    """A user added, their token rotated, made an admin and removed, with `emulate users`: what it printed."""
    printed = secured.emulate("users", "add", name).stdout
    printed += secured.emulate("users", "token", name, "--rotate").stdout
    secured.emulate("users", "admin", name)
    secured.emulate("users", "rm", name)
    return [word for word in printed.split() if len(word) >= 12]  # the password and both tokens


def test_the_audit_log_has_a_line_for_each_action_and_no_secret(
    secured: Instance, people: dict[str, Person], job_image: str
) -> None:
    alice, boss = people["alice"], people["boss"]
    api = _api(secured, alice)
    # A password can have a user name's shape (`typo`: one typed in the name field).
    made = {name: f"{name}-{secrets.token_hex(8)}" for name in ("env", "arg", "registry", "wrong", "typo")}
    header = base64.b64encode(f"alice:{made['registry']}".encode()).decode()
    refused = api.post(
        "/skaha/v0/session",
        data={"name": "obs", "image": job_image, "type": "headless", "cores": "lots", "env": f"KEY={made['env']}"}
        | {"cmd": "echo", "args": made["arg"]},
        headers={"x-skaha-registry-auth": header},
    )
    assert refused.status_code == 400, refused.text
    session_id = _job(api, job_image, "sleep", "600")
    _wait(api, session_id, "Running")
    seen = _portal_actions(secured, alice, session_id, made["wrong"], made["typo"])
    assert api.delete(f"/skaha/v0/session/{session_id}").status_code == 200
    user = f"obs{secrets.token_hex(3)}"
    printed = _user_changes(secured, user)
    assert _api(secured, boss).get(USAGE).status_code == 200

    text, lines = _audit_lines(secured)
    launch = _one(lines, action="launch", who="alice", outcome="refused")
    assert launch["reason"] == "Invalid value for 'cores'" and launch["type"] == "headless"
    assert _one(lines, action="launch", session=session_id)["image"] == job_image
    assert _one(lines, action="renew", session=session_id)["who"] == "alice"
    assert _one(lines, action="delete", session=session_id)["outcome"] == "ok"
    assert _one(lines, action="sign-in", who="alice")["from"]
    assert _one(lines, action="sign-in-failed", user="alice")["outcome"] == "failed"
    assert _one(lines, action="sign-in-failed", user="(unknown user)")["outcome"] == "failed"
    assert _one(lines, action="logout", who="alice")
    for action in ("user-add", "user-token", "user-admin", "user-remove"):
        assert _one(lines, action=action, user=user)["from"] == "cli"
    assert _one(lines, action="user-add", user="boss")["admin"] is True  # the people fixture's
    assert _one(lines, action="usage", who="boss")
    found = [s for s in [*made.values(), header, secured.token, *seen, *printed] if s in text]
    found += [p.name for p in people.values() if p.password in text or p.token in text]
    assert found == [], f"secrets in the audit log: {found}"


def test_metrics_parse_and_answer_admins_alone(secured: Instance, people: dict[str, Person], job_image: str) -> None:
    bob = _api(secured, people["bob"])
    failing = _job(bob, job_image, "false")
    _wait(bob, failing, "Failed")
    httpx.post(f"{secured.url}/science-portal/login", data={"username": "bob", "password": "not-his"}, timeout=30)
    answer = _api(secured, people["boss"]).get("/metrics")
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/plain")
    families = {f.name: f.samples for f in text_string_to_metric_families(answer.text)}
    assert set(families) >= FAMILIES

    def value(family: str, sample: str, **labels: str) -> float:
        return next(s.value for s in families[family] if s.name == sample and s.labels == labels)

    assert value("skaha_emulator_launches", "skaha_emulator_launches_total", type="headless", outcome="ok") >= 1
    failures = value(
        "skaha_emulator_session_failures", "skaha_emulator_session_failures_total", type="headless", reason="exited"
    )
    assert failures >= 1
    assert value("skaha_emulator_sessions", "skaha_emulator_sessions", type="headless", status="Failed") >= 1
    signins = value("skaha_emulator_signin_failures", "skaha_emulator_signin_failures_total", reason="wrong-password")
    assert signins >= 1
    routes = {s.labels["route"] for s in families["skaha_emulator_request_duration_seconds"]}
    assert "/skaha/{version}/session/{session_id}" in routes and not any(failing in r for r in routes)
    for person in (people["alice"], None):  # a user who is no admin, and nobody
        for path in ("/metrics", USAGE):
            assert _api(secured, person).get(path).status_code == (403 if person else 401), (person, path)


def _usage_of(document: dict[str, Any], user: str) -> dict[str, Any]:
    return next(line for line in document["usage"] if line["user"] == user and line["type"] == "headless")


def test_usage_hours_add_up_across_a_service_restart(
    secured: Instance, people: dict[str, Person], job_image: str
) -> None:
    name = f"obs{secrets.token_hex(3)}"  # a user of its own: nobody else's jobs in their usage
    printed = secured.emulate("users", "add", name).stdout
    token = next(line.split()[1] for line in printed.splitlines() if line.startswith("token:"))
    own, boss = _api(secured, Person(name, "", token)), _api(secured, people["boss"])
    quick = _job(own, job_image)  # its own command: a line, and done
    _wait(own, quick, "Succeeded")
    running = _job(own, job_image, "sleep", "600")
    _wait(own, running, "Running")
    launched = time.monotonic()
    before = _usage_of(boss.get(USAGE).json(), name)
    assert before["sessions"] == 1 and before["session_hours"] > 0
    secured.restart_service()
    assert own.delete(f"/skaha/v0/session/{running}").status_code == 200
    lived = time.monotonic() - launched
    after = _usage_of(json.loads(secured.emulate("usage", "--json").stdout), name)  # the first admin's token
    assert after["sessions"] == 2
    assert after["session_hours"] >= before["session_hours"] + (lived - 1.5) / 3600
    assert after["core_hours"] > before["core_hours"]
    today = time.strftime("%Y-%m-%d", time.gmtime())
    csv_text = secured.emulate("usage", "--since", today, "--csv").stdout
    assert csv_text.startswith("user,type,sessions,") and f"\n{name},headless,2," in csv_text
    bad = secured.emulate("usage", "--since", "last tuesday", check=False)
    assert bad.returncode == 1 and bad.stderr.startswith("error: since: give a day (YYYY-MM-DD)"), bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1
