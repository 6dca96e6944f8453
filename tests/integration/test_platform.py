"""The platform as a whole: restarts, orphans, the CLI, and instances side by side."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from emulator import labels, naming
from emulator.profiles import load_profiles
from emulator.settings import REPO_ROOT
from tests.instance import GATEWAY, INSTANCE, NETWORK, PREFIX, SERVICE, Instance, free_port

pytestmark = pytest.mark.slow

IMAGE = "skaha-emulator/notebook:latest"


# Each session's own host (<id>.localhost on loopback), then on the portal's host one route per interactive
# session type (sorted), the API and portal, the front door (/ to the portal) and the catch-all.
ROUTES = ["session-hosts"]
ROUTES += [f"type-{t}" for t, p in sorted(load_profiles(REPO_ROOT / "profiles").items()) if p.interactive] + [
    "skaha-api",
    "front-door",
    "not-found",
]


def _consistent(platform: Instance) -> None:
    """Every session container has a row and every row a container that answers through the gateway."""
    containers = {c.labels[labels.SESSION_ID] for c in platform.session_containers()}
    rows = set(platform.rows())
    assert containers == rows, (containers, rows)
    assert platform.route_ids() == ROUTES
    assert all(platform.answers(session_id) == 200 for session_id in rows)


def test_killing_the_service_mid_launch_leaves_no_orphan(fresh: Instance) -> None:
    service = fresh.docker.containers.get(SERVICE)
    response = fresh.http.post("/session", data={"name": "interrupted", "image": IMAGE, "type": "notebook"})
    session_id = response.text.strip()
    service.kill()
    fresh.emulate("up", "--no-build")
    fresh.wait_status(session_id, "Running")
    _consistent(fresh)
    events = fresh.http.get(f"/session/{session_id}", params={"view": "events"}).text
    assert "Resumed" in events


def test_a_service_restart_removes_orphan_containers(fresh: Instance) -> None:
    session_id = fresh.launch()
    orphan = fresh.docker.containers.run(
        IMAGE,
        ["sleep", "600"],
        detach=True,
        name=naming.session_container(PREFIX, "notebook", "orphan00"),
        labels={labels.INSTANCE: INSTANCE, labels.ROLE: labels.ROLE_SESSION, labels.SESSION_ID: "orphan00"},
        network=NETWORK,
    )
    fresh.docker.containers.get(SERVICE).restart()
    fresh.emulate("up", "--no-build")
    assert not any(c.id == orphan.id for c in fresh.docker.containers.list(all=True))
    _consistent(fresh)
    assert fresh.session(session_id)["status"] == "Running"


def _routes_come_back(platform: Instance, session_id: str) -> None:
    """A gateway that started with its bootstrap config gets the whole table from the service within 30 s."""
    deadline = time.monotonic() + 30
    while platform.route_ids() != ROUTES:
        assert time.monotonic() < deadline, platform.route_ids()
        time.sleep(0.2)
    assert platform.answers(session_id) == 200


def test_a_restarted_gateway_gets_its_routes_back(fresh: Instance) -> None:
    session_id = fresh.launch()
    fresh.docker.containers.get(GATEWAY).restart()  # back with its bootstrap config
    _routes_come_back(fresh, session_id)
    _consistent(fresh)


def test_sessions_and_arc_survive_down_and_up(fresh: Instance) -> None:
    session_id = fresh.launch()
    fresh.exec(session_id, "echo still-here > $HOME/survivor.txt")
    fresh.emulate("down")
    assert fresh.docker.containers.list(all=True, filters={"name": SERVICE}) == []
    fresh.emulate("up", "--no-build")
    assert fresh.session(session_id)["status"] == "Running"
    assert fresh.exec(session_id, "cat $HOME/survivor.txt").strip() == "still-here"
    _consistent(fresh)


def test_up_is_idempotent(platform: Instance) -> None:
    service = platform.docker.containers.get(SERVICE)
    platform.emulate("up", "--no-build")
    assert platform.docker.containers.get(SERVICE).id == service.id


def _gateway_threads(platform: Instance) -> str:
    environment: list[str] = platform.docker.containers.get(GATEWAY).attrs["Config"]["Env"]
    return next(e.split("=", 1)[1] for e in environment if e.startswith("GOMAXPROCS="))


def test_the_gateways_cores_change_with_up_and_its_routes_stay(fresh: Instance) -> None:
    session_id = fresh.launch()
    service = fresh.docker.containers.get(SERVICE).id
    assert _gateway_threads(fresh) == "1"
    before = fresh.env.copy()
    fresh.env["EMULATE_GATEWAY_CPUS"] = "2"
    try:
        fresh.emulate("up", "--no-build")
        assert _gateway_threads(fresh) == "2"
        assert fresh.docker.containers.get(SERVICE).id == service  # not the service's
        _routes_come_back(fresh, session_id)
        fresh.env["EMULATE_GATEWAY_CPUS"] = "0"
        refused = fresh.emulate("up", "--no-build", check=False)
        assert refused.returncode != 0 and "EMULATE_GATEWAY_CPUS" in refused.stderr + refused.stdout
        assert _gateway_threads(fresh) == "2"
    finally:
        fresh.env.clear()
        fresh.env.update(before)
        fresh.emulate("up", "--no-build")
    assert _gateway_threads(fresh) == "1"


def test_cli_launch_ps_info_events_renew_logs_delete(fresh: Instance) -> None:
    launched = fresh.emulate("launch", "notebook", "--name", "from-cli", "--cores", "1", "--ram", "2")
    session_id, url = launched.stdout.split()[0], launched.stdout.strip().splitlines()[-1]
    assert url.startswith(f"{fresh.session_host(session_id)}/session/notebook/{session_id}/lab/tree/arc/home/")
    listing = json.loads(fresh.emulate("ps", "--json").stdout)
    assert [s["id"] for s in listing] == [session_id]
    assert session_id in fresh.emulate("ps").stdout
    # Used against requested: the first listing asks for a sample, a later one shows it.
    deadline = time.monotonic() + 20
    while re.search(r"\d+M / 2G", listed := fresh.emulate("ps").stdout) is None:
        assert time.monotonic() < deadline, listed
        time.sleep(0.5)
    assert re.search(r"\d\.\d+ / 1", listed), listed
    overview = fresh.emulate("stats").stdout
    assert (
        "sessions 1," in overview and "cores    1 requested of" in overview and "RAM      2G requested of" in overview
    )
    assert "machine  " in overview and "of memory in use now" in overview
    assert json.loads(fresh.emulate("stats", "--json").stdout)["instances"]["session"] == 1
    assert json.loads(fresh.emulate("info", session_id).stdout)["name"] == "from-cli"
    assert "Ready" in fresh.emulate("events", session_id).stdout
    assert "now expires at" in fresh.emulate("renew", session_id).stdout
    assert "Jupyter" in fresh.emulate("logs", session_id).stdout
    assert fresh.emulate("open", session_id, check=False).stdout.strip() == url
    assert "deleted" in fresh.emulate("delete", session_id).stdout
    assert fresh.rows() == []


def test_cli_errors_are_one_line_without_traceback(fresh: Instance) -> None:
    result = fresh.emulate("info", "zzzzzzzz", check=False)
    assert result.returncode == 1
    assert result.stderr.strip() == "error: session zzzzzzzz not found"
    app = fresh.emulate("launch", "desktop-app", check=False)
    assert app.returncode == 2 and "'desktop-app' is not one of" in app.stderr
    bad = fresh.emulate("launch", "notebook", "--name", "bad_name", check=False)
    assert bad.returncode == 1
    assert bad.stderr.strip() == "error: name can only contain alpha-numeric chars and '-'"


def test_errors_of_the_api_reach_people_as_sentences(fresh: Instance) -> None:
    result = fresh.emulate("delete", "zzzzzzzz", check=False)
    assert (result.returncode, result.stderr.strip()) == (1, "error: no session zzzzzzzz")
    assert fresh.http.delete("/session/zzzzzzzz").text == "zzzzzzzz\n"  # the API itself answers as skaha does


def test_an_instance_that_was_never_started_says_so(platform: Instance, tmp_path: Path) -> None:
    env = {k: v for k, v in platform.env.items() if not k.startswith("EMULATE_")}
    env["XDG_STATE_HOME"] = str(tmp_path)
    env["EMULATE_CONFIG_DIR"] = platform.env["EMULATE_CONFIG_DIR"]
    result = subprocess.run(
        [sys.executable, "-m", "emulator", "--instance", "nothere", "ps"], env=env, capture_output=True, text=True
    )
    assert result.returncode == 1, result.stdout
    wanted = "error: instance 'nothere' is not up; start it with `emulate --instance nothere up`"
    assert result.stderr.startswith(wanted)


def test_cli_reports_an_unreachable_service(platform: Instance) -> None:
    env = {**platform.env, "EMULATE_URL": "http://127.0.0.1:9"}
    result = subprocess.run([sys.executable, "-m", "emulator", "ps"], env=env, capture_output=True, text=True)
    assert result.returncode == 1
    assert result.stderr.strip().startswith("error: cannot reach the emulator at http://127.0.0.1:9")
    assert "Traceback" not in result.stderr


def test_context_command(platform: Instance) -> None:
    document = json.loads(platform.emulate("context", "--json").stdout)
    assert document == platform.http.get("/context").json()


def test_ps_hides_ended_sessions_but_says_so(fresh: Instance) -> None:
    response = fresh.http.post(
        "/session", data={"name": "broken", "image": "skaha-emulator/gateway:latest", "type": "notebook"}
    )
    session_id = response.text.strip()
    fresh.wait_status(session_id, "Failed")
    listed = fresh.emulate("ps")
    assert session_id not in listed.stdout
    assert "1 ended session(s) not shown; `emulate ps -a` lists them" in listed.stderr
    assert session_id in fresh.emulate("ps", "-a").stdout


def test_serve_runs_the_service_in_the_foreground(platform: Instance, tmp_path: Path) -> None:
    """`emulate serve` (development): the service on the host, the gateway in Docker, its own instance."""
    port = free_port()
    env = {
        **platform.env,
        "EMULATE_INSTANCE": "pytest-serve",
        "EMULATE_PORT": str(port),
        "EMULATE_STATE_DIR": str(tmp_path / "state"),
        "EMULATE_CONFIG_DIR": str(tmp_path / "config"),
        "EMULATE_ARC_DIR": str(tmp_path / "arc"),
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "emulator", "serve"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        token = subprocess.run(
            [sys.executable, "-m", "emulator", "token"], env=env, capture_output=True, text=True, check=True
        ).stdout.strip()
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/skaha/availability", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline and server.poll() is None, "emulate serve did not come up"
            time.sleep(0.2)
        context = httpx.get(f"http://127.0.0.1:{port}/skaha/v1/context", headers={"Authorization": f"Bearer {token}"})
        assert context.status_code == 200 and "cores" in context.json()
    finally:
        server.terminate()
        server.wait(timeout=30)
        subprocess.run(
            [sys.executable, "-m", "emulator", "down", "--remove-sessions"], env=env, check=True, capture_output=True
        )
    assert platform.docker.containers.list(all=True, filters={"label": f"{labels.INSTANCE}=pytest-serve"}) == []


def test_password_guessing_waits_and_says_so(fresh: Instance) -> None:
    """The 30th wrong password in a minute, for a name or from an address, is not checked: the answer says
    how long to wait. (The service is restarted afterwards: the wait is kept in its memory, and this test's
    address is every test's.)"""
    portal = httpx.Client(base_url=fresh.url, timeout=30)
    try:
        for _ in range(29):
            wrong = portal.post("/science-portal/login", data={"username": "canfar", "password": "not-it-at-all"})
            assert wrong.status_code == 401 and "Wrong user name or password." in wrong.text
        waits = portal.post("/science-portal/login", data={"username": "canfar", "password": fresh.token})
        assert waits.status_code == 429, waits.text  # even the right secret: it is not checked while waiting
        assert "Too many wrong passwords for this name or from this address: try again in" in waits.text
        assert 0 < int(waits.headers["Retry-After"]) <= 60
        # The address counts too: another name from here waits as well, whatever it claims to come from.
        other = portal.post(
            "/science-portal/login",
            data={"username": "somebody", "password": "x"},
            headers={"X-Forwarded-For": "203.0.113.9"},
        )
        assert other.status_code == 429
    finally:
        fresh.restart_service()
    signed = portal.post("/science-portal/login", data={"username": "canfar", "password": fresh.token})
    assert signed.status_code == 303


def test_a_removed_users_sessions_end_unless_kept(fresh: Instance) -> None:
    """Nobody can delete a removed user's session (their token is gone) and it would write into a home
    kept for them: `users rm` ends them, or with --keep-sessions leaves them to expire until a second rm."""
    printed = fresh.emulate("users", "add", "zed").stdout
    token = next(line.split()[1] for line in printed.splitlines() if line.startswith("token:"))
    zed = httpx.Client(base_url=f"{fresh.url}/skaha/v0", headers={"Authorization": f"Bearer {token}"}, timeout=30)
    launched = zed.post("/session", data={"name": "z", "image": "skaha-emulator/notebook:latest", "type": "notebook"})
    session_id = launched.text.strip()
    deadline = time.monotonic() + 120
    while zed.get(f"/session/{session_id}").json()["status"] != "Running":
        assert time.monotonic() < deadline, fresh.service_logs()
        time.sleep(0.2)
    kept = fresh.emulate("users", "rm", "zed", "--keep-sessions").stdout
    assert "their sessions run on until they expire" in kept
    fresh.launch()  # the engine's events wake housekeeping: a pass has seen zed gone by now
    time.sleep(0.5)
    assert session_id in fresh.rows() and fresh.container(session_id).status == "running"
    assert "kept sessions end" in fresh.emulate("users", "rm", "zed").stdout
    deadline = time.monotonic() + 30
    while session_id in fresh.rows():
        assert time.monotonic() < deadline, fresh.service_logs()
        time.sleep(0.2)
    assert not fresh.docker.containers.list(all=True, filters={"label": f"{labels.ROW_ID}={session_id}"})
    assert (fresh.arc_dir / "home" / "zed").is_dir()  # their files are kept
