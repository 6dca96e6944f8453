"""Last activity and idle culling, on an instance of their own with sign-in on and a shortened idle limit.

Last activity comes from the gateway's own access log: a request that reached a session moves it; the session's
readiness probe and a stranger's refused requests do not. Idle culling stops a session nobody used, after a
warning on its owner's dashboard (its card then stays, with the reason and Relaunch), and keeps one in use through a
WebSocket (which Caddy logs only as it closes).
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from datetime import datetime

import docker
import httpx
import pytest
from websockets.sync.client import ClientConnection, connect

from emulator import labels
from tests.factories import TEST_IMAGES, build_test_image, remove_test_image, worker_image_tag
from tests.instance import INSTANCE, Instance, Person, start_instance, stop_instance

pytestmark = pytest.mark.slow

CONTRACT_APP = worker_image_tag("contract-app")
IDLE_HOURS = 0.004  # 14.4 s: a session nobody uses is warned after 7.2 s idle and stopped after 14.4 s
WARNING = "for inactivity; open it to keep it; renewing does not."
CULLED = "Stopped for inactivity: no traffic through the gateway since"


@pytest.fixture(scope="module")
def idle_platform(tmp_path_factory: pytest.TempPathFactory, docker_client: docker.DockerClient) -> Iterator[Instance]:
    build_test_image(docker_client, CONTRACT_APP, path=str(TEST_IMAGES / "contract-app"))
    settings = {"EMULATE_IDLE_CULL_HOURS": str(IDLE_HOURS)}
    instance = start_instance(
        tmp_path_factory.mktemp("idle"), f"{INSTANCE}-idle", docker_client, "--auth", settings=settings
    )
    try:
        yield instance
    finally:
        stop_instance(instance, docker_client)
        remove_test_image(docker_client, CONTRACT_APP)


@pytest.fixture(scope="module")
def people(idle_platform: Instance) -> dict[str, Person]:
    """ann launches; eve is a stranger to her sessions."""
    found = {}
    for name in ("ann", "eve"):
        printed = idle_platform.emulate("users", "add", name).stdout
        values = dict(line.split(": ", 1) for line in printed.splitlines() if ": " in line)
        found[name] = Person(name, values["password"].strip(), values["token"].strip())
    return found


@pytest.fixture(scope="module")
def sessions(idle_platform: Instance, people: dict[str, Person]) -> tuple[str, str]:
    """Two of ann's contributed sessions of the small contract app, Running: one to be used, one left idle."""
    api = _api(idle_platform, people["ann"])
    ids = []
    for name in ("used", "idle"):
        answer = api.post("/session", data={"name": name, "image": CONTRACT_APP, "type": "contributed"})
        assert answer.status_code == 200, answer.text
        ids.append(answer.text.strip())
    deadline = time.monotonic() + 120
    while any(api.get(f"/session/{i}").json()["status"] != "Running" for i in ids):
        assert time.monotonic() < deadline, idle_platform.service_logs()
        time.sleep(0.2)
    return ids[0], ids[1]


def _api(instance: Instance, person: Person) -> httpx.Client:
    return httpx.Client(
        base_url=f"{instance.url}/skaha/v0", headers={"Authorization": f"Bearer {person.token}"}, timeout=30
    )


def _path(instance: Instance, session_id: str) -> str:
    return f"{instance.url}/session/contrib/{session_id}/"


def _as(person: Person | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {person.token}"} if person else {}


def _last_activity(instance: Instance, session_id: str) -> datetime | None:
    with sqlite3.connect(instance.state_dir / "state.db") as db:
        row = db.execute("SELECT last_activity FROM sessions WHERE id = ?", (session_id,)).fetchone()
    assert row is not None, f"no session {session_id}"
    return datetime.fromisoformat(row[0]) if row[0] else None


def _card(instance: Instance, browser: httpx.Client, session_id: str) -> str:
    """The text of a session's card on its owner's dashboard (as the page's refresh fetches it)."""
    page = browser.get(f"{instance.url}/science-portal/fragments/sessions").text
    start = page.index(f'data-id="{session_id}"')
    return page[start : page.index("</li>", start)]


def _poke(instance: Instance, session_id: str, eve: Person, gone: bool = False) -> None:
    """A stranger's requests for the session: refused (403 signed in, 401 without credentials); with `gone`, a 404
    once it was deleted."""
    for headers, refused in ((_as(eve), 403), ({}, 401)):
        status = httpx.get(_path(instance, session_id), headers=headers, timeout=10).status_code
        assert status == refused or (gone and status == 404), (headers, status)


def test_only_requests_that_reach_a_session_move_its_last_activity(
    idle_platform: Instance, people: dict[str, Person], sessions: tuple[str, str]
) -> None:
    used, idle = sessions
    _poke(idle_platform, idle, people["eve"])  # each session's readiness probe went through the gateway too
    before = datetime.now().astimezone()
    answer = httpx.get(f"{_path(idle_platform, used)}?token=secret-in-a-query", headers=_as(people["ann"]))
    assert answer.status_code == 200 and answer.json()["path"] == "/"
    deadline = time.monotonic() + 10
    while _last_activity(idle_platform, used) is None:
        assert time.monotonic() < deadline, "the request was never seen in the access log"
        time.sleep(0.2)
    seen = _last_activity(idle_platform, used)
    assert seen is not None and seen >= before.replace(microsecond=0)
    assert _last_activity(idle_platform, idle) is None  # read in the same pass as the line after them
    with httpx.Client(base_url=idle_platform.url, timeout=30) as browser:
        login = {"username": "ann", "password": people["ann"].password, "next": "/science-portal/"}
        assert browser.post("/science-portal/login", data=login).status_code == 303
        assert "Last activity</dt><dd>just now" in _card(idle_platform, browser, used)
        assert "Last activity</dt><dd>none yet" in _card(idle_platform, browser, idle)
    _the_log_is_the_platforms_alone(idle_platform, people)


def _the_log_is_the_platforms_alone(instance: Instance, people: dict[str, Person]) -> None:
    folder = instance.state_dir / "gateway"
    log = folder / "access.log"
    assert folder.stat().st_mode & 0o777 == 0o700 and log.stat().st_mode & 0o777 == 0o600
    text = log.read_text()
    lines = [json.loads(line) for line in text.splitlines()]
    assert lines and all(set(line["request"]) == {"remote_ip", "remote_port", "proto"} for line in lines)
    assert all("resp_headers" not in line for line in lines)
    assert max(len(line) for line in text.splitlines()) < 400  # nothing a client sent makes one longer
    for secret in (people["ann"].token, people["eve"].token, people["ann"].password, "secret-in-a-query", "/session"):
        assert secret not in text  # no path either (the files a path names)
    assert "/science-portal/login" not in text and len(lines) > 3  # the portal's requests are there, nameless


def test_an_idle_session_is_warned_then_stopped_with_its_reason_and_one_in_use_is_kept(
    idle_platform: Instance, people: dict[str, Person], sessions: tuple[str, str], docker_client: docker.DockerClient
) -> None:
    used, idle = sessions
    url = _path(idle_platform, used).replace("http://", "ws://") + "ws"
    with (
        connect(url, open_timeout=15, additional_headers=_as(people["ann"])) as websocket,
        httpx.Client(base_url=idle_platform.url, timeout=30) as browser,
    ):
        _echo(websocket)
        login = {"username": "ann", "password": people["ann"].password, "next": "/science-portal/"}
        assert browser.post("/science-portal/login", data=login).status_code == 303
        warned_first = _wait_for_warning(idle_platform, browser, idle, people)
        assert WARNING not in _card(idle_platform, browser, used)
        _wait_ended(idle_platform, idle, people)
        assert warned_first  # the card said so before the session went
        _ended_as_the_platform_stopped_it(idle_platform, browser, idle, docker_client)
        _echo(websocket)  # kept, and its connection with it
        assert _api(idle_platform, people["ann"]).get(f"/session/{used}").json()["status"] == "Running"
        assert WARNING not in _card(idle_platform, browser, used)
    audit = [json.loads(line) for line in (idle_platform.state_dir / "audit.log").read_text().splitlines()]
    culls = [line for line in audit if line["action"] == "idle-cull"]
    assert [(c["session"], c["user"]) for c in culls] == [(idle, "ann")]


def _echo(websocket: ClientConnection) -> None:
    websocket.send("ping")
    assert websocket.recv(timeout=10) == "echo: ping"


def _wait_for_warning(instance: Instance, browser: httpx.Client, session_id: str, people: dict[str, Person]) -> bool:
    """Wait for the warning on the session's card (a stranger poking it all the while); its event too."""
    deadline = time.monotonic() + 30
    while WARNING not in (card := _card(instance, browser, session_id)):
        assert time.monotonic() < deadline, f"no warning on the card of {session_id}:\n{card}"
        _poke(instance, session_id, people["eve"])
        time.sleep(0.3)
    assert "will be stopped at" in card
    events = _api(instance, people["ann"]).get(f"/session/{session_id}", params={"view": "events"})
    assert "IdleWarning" in events.text, events.text
    return True


def _wait_ended(instance: Instance, session_id: str, people: dict[str, Person]) -> None:
    api = _api(instance, people["ann"])
    deadline = time.monotonic() + 30
    while api.get(f"/session/{session_id}").json()["status"] != "Failed":
        assert time.monotonic() < deadline, f"{session_id} was never stopped:\n{instance.service_logs()}"
        _poke(instance, session_id, people["eve"], gone=True)
        time.sleep(0.3)


def _ended_as_the_platform_stopped_it(
    instance: Instance, browser: httpx.Client, session_id: str, docker_client: docker.DockerClient
) -> None:
    """Its card stays, with the reason and Relaunch; its container is stopped, and its use counted up to then."""
    card = _card(instance, browser, session_id)
    assert CULLED in card and 'data-action="relaunch"' in card and WARNING not in card, card
    with sqlite3.connect(instance.state_dir / "state.db") as db:
        reason = db.execute("SELECT reason FROM events WHERE session_id = ? ORDER BY id DESC", (session_id,))
        assert reason.fetchone() == ("IdleCulled",)
        assert db.execute("SELECT COUNT(*) FROM usage WHERE session_id = ?", (session_id,)).fetchone() == (1,)
    [container] = docker_client.containers.list(all=True, filters={"label": f"{labels.ROW_ID}={session_id}"})
    deadline = time.monotonic() + 30
    while container.status == "running":
        assert time.monotonic() < deadline, "the culled session's container was never stopped"
        time.sleep(0.3)
        container.reload()
