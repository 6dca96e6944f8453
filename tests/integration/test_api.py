"""skaha's REST API: shapes, errors, limits and lifecycle, against the real platform."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from tests.instance import Instance

pytestmark = pytest.mark.slow

IMAGE = "skaha-emulator/notebook:latest"
REGISTRY_AUTH = "x-skaha-registry-auth"  # a header, sent as such by the test


def _nothing_new(platform: Instance, containers: int, gateway: object, rows: list[str]) -> None:
    assert len(platform.session_containers()) == containers
    assert platform.gateway_config() == gateway
    assert platform.rows() == rows


@pytest.mark.parametrize(
    "data, code, message",
    [
        (
            {"name": "bad_name", "image": IMAGE, "type": "notebook"},
            400,
            "name can only contain alpha-numeric chars and '-'",
        ),
        ({"name": "", "image": IMAGE, "type": "notebook"}, 400, "name must have a value"),
        ({"image": IMAGE, "type": "notebook"}, 400, "Missing parameter 'name'"),
        ({"name": "x", "image": IMAGE, "type": "jupyter"}, 400, "Invalid session type: jupyter"),
        ({"name": "x", "image": IMAGE, "type": "notebook", "cores": "99"}, 400, "Invalid value for 'cores': 99"),
        ({"name": "x", "image": IMAGE, "type": "notebook", "cores": "one"}, 400, "Invalid value for 'cores': one"),
        ({"name": "x", "image": IMAGE, "type": "notebook", "ram": "3"}, 400, "Invalid value for 'ram': 3"),
        ({"name": "x", "type": "notebook"}, 400, "Missing parameter 'image'"),
        (
            {"name": "x", "image": IMAGE, "type": "notebook", REGISTRY_AUTH: "bm90LWEtcGFpcg=="},
            400,
            "Invalid input.  Must be in form of username:secret",
        ),
        ({"name": "x", "image": IMAGE, "type": "desktop"}, 400, "image/type mismatch: " + IMAGE + "/desktop"),
    ],
)
def test_bad_launches_get_skahas_answer_and_leave_nothing(
    fresh: Instance, data: dict[str, str], code: int, message: str
) -> None:
    before = (len(fresh.session_containers()), fresh.gateway_config(), fresh.rows())
    headers = {REGISTRY_AUTH: data.pop(REGISTRY_AUTH)} if REGISTRY_AUTH in data else {}
    response = fresh.http.post("/session", data=data, headers=headers)
    assert response.status_code == code
    assert response.headers["content-type"].startswith("text/plain")
    assert response.text == message + "\n"
    _nothing_new(fresh, *before)


def test_unlabelled_local_images_are_trusted_for_any_type(fresh: Instance) -> None:
    # The gateway image has no session-type label: like skaha's private-image path, the type is trusted.
    image = "skaha-emulator/gateway:latest"
    response = fresh.http.post("/session", data={"name": "x", "image": image, "type": "notebook"})
    assert response.status_code == 200, response.text  # not skaha's "image/type mismatch" 400
    session_id = response.text.strip()
    session = fresh.wait_status(session_id, "Failed")
    assert (session["type"], session["image"]) == ("notebook", image)
    # Trusted means run as asked: its container started with the notebook's launch script, which found no
    # JupyterLab in Caddy's image; that, not a refusal, is why it failed (the script's last output says so).
    events = fresh.http.get(f"/session/{session_id}", params={"view": "events"}).text
    assert "Started container" in events and "jupyter" in events.lower(), events


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong-token-value"}, {"Authorization": "Basic x"}])
def test_no_or_wrong_token_is_401_and_creates_nothing(fresh: Instance, headers: dict[str, str]) -> None:
    before = (len(fresh.session_containers()), fresh.gateway_config(), fresh.rows())
    for method, path in [("GET", "/session"), ("POST", "/session"), ("GET", "/context"), ("GET", "/image")]:
        response = httpx.request(
            method,
            f"{fresh.url}/skaha/v0{path}",
            headers=headers,
            data={"name": "x", "image": IMAGE, "type": "notebook"} if method == "POST" else None,
        )
        assert (response.status_code, response.text) == (401, "Unauthorized\n")
        assert response.headers["content-type"].startswith("text/plain")
    _nothing_new(fresh, *before)


def test_launch_answers_the_id_as_text_before_the_session_is_ready(fresh: Instance) -> None:
    response = fresh.http.post(
        "/session", params={"name": "q", "image": IMAGE, "type": "notebook", "env": ["REPLICA_ID=1", "REPLICA_COUNT=1"]}
    )
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    session_id = response.text.removesuffix("\n")
    assert len(session_id) == 8 and session_id[0].isalpha()
    assert fresh.session(session_id)["status"] == "Pending"
    fresh.wait_status(session_id, "Running")


def test_fourth_session_is_refused_with_skahas_message(fresh: Instance) -> None:
    ids = [fresh.launch(name=f"s{i}", wait=False) for i in range(3)]
    rows = sorted(fresh.rows())
    response = fresh.http.post("/session", data={"name": "s4", "image": IMAGE, "type": "notebook"})
    user = fresh.session(ids[0])["userid"]
    assert (response.status_code, response.text) == (
        400,
        f"User {user} has reached the maximum of 3 active sessions.\n",
    )
    for session_id in ids:
        fresh.wait_status(session_id, "Running")
    assert sorted(fresh.rows()) == rows
    assert len(fresh.session_containers()) == 3


def test_ten_parallel_launches_end_with_exactly_three_sessions(fresh: Instance) -> None:
    def launch(i: int) -> int:
        return fresh.http.post("/session", data={"name": f"p{i}", "image": IMAGE, "type": "notebook"}).status_code

    with ThreadPoolExecutor(10) as pool:
        codes = list(pool.map(launch, range(10)))
    assert sorted(codes) == [200] * 3 + [400] * 7
    sessions = fresh.http.get("/session").json()
    assert len(sessions) == 3
    for session in sessions:
        fresh.wait_status(session["id"], "Running")
    assert len(fresh.session_containers()) == 3
    assert all(fresh.answers(s["id"]) == 200 for s in sessions)


def test_renew_moves_expiry_to_now_plus_four_days(fresh: Instance) -> None:
    session_id = fresh.launch(wait=False)
    before = fresh.session(session_id)["expiryTime"]
    time.sleep(1.2)
    response = fresh.http.post(f"/session/{session_id}", data={"action": "renew"})
    assert (response.status_code, response.text) == (200, "")
    after = fresh.session(session_id)["expiryTime"]
    assert after > before
    expiry = datetime.strptime(after, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert abs(expiry - (datetime.now(UTC) + timedelta(days=4))) < timedelta(seconds=5)
    assert fresh.http.post(f"/session/{session_id}").text == "Cannot modify an existing session\n"
    assert fresh.http.post(f"/session/{session_id}", data={"action": "extend"}).text == "unrecognized action\n"
    user = fresh.session(session_id)["userid"]
    missing = fresh.http.post("/session/zzzzzzzz", data={"action": "renew"})
    assert (missing.status_code, missing.text) == (400, f"No active job for user {user} with session zzzzzzzz\n")


def test_expired_sessions_are_removed_by_the_service(fresh: Instance) -> None:
    session_id = fresh.launch()
    past = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    fresh.sql("UPDATE sessions SET expiry_time = ? WHERE id = ?", past, session_id)
    fresh.wait_gone(session_id)
    assert fresh.session_containers() == []
    assert fresh.answers(session_id) == 404


def test_delete_removes_container_route_and_record(fresh: Instance) -> None:
    session_id = fresh.launch()
    gateway = fresh.gateway_config()
    assert fresh.answers(session_id) == 200
    response = fresh.http.delete(f"/session/{session_id}")
    assert (response.status_code, response.text) == (200, "")
    assert fresh.session_containers() == [] and session_id not in fresh.rows()
    gone = httpx.get(f"{fresh.url}/session/notebook/{session_id}/api", timeout=5)
    assert (gone.status_code, gone.text) == (
        404,
        f"skaha-emulator: no running session serves /session/notebook/{session_id}/api\n",
    )
    assert fresh.gateway_config() == gateway  # sessions come and go without touching the gateway
    again = fresh.http.delete(f"/session/{session_id}")
    assert (again.status_code, again.text) == (404, f"{session_id}\n")
    assert fresh.http.get(f"/session/{session_id}").text == f"session {session_id} not found\n"
    assert fresh.http.delete("/session").text == "Cannot kill all sessions.\n"


def test_logs_and_events_views(fresh: Instance) -> None:
    session_id = fresh.launch()
    logs = fresh.http.get(f"/session/{session_id}", params={"view": "logs"})
    assert logs.headers["content-type"].startswith("text/plain")
    assert f"/session/notebook/{session_id}/" in logs.text  # JupyterLab prints its URL
    events = fresh.http.get(f"/session/{session_id}", params={"view": "events"}).text.splitlines()
    assert events[0].split() == ["TYPE", "REASON", "MESSAGE", "FIRST-TIME", "LAST-TIME"]
    assert [line.split()[1] for line in events[1:]] == ["Scheduled", "Started", "Ready"]


def test_session_json_in_v0_and_v1(fresh: Instance) -> None:
    session_id = fresh.launch(cores="1", ram="2")
    v0 = fresh.session(session_id)
    assert v0["requestedRAM"] == "2G" and v0["requestedCPUCores"] == "1" and v0["appid"] == "<none>"
    deadline = time.monotonic() + 15  # usage is sampled every 5 s, as metrics-server feeds kubectl top
    while (sampled := fresh.session(session_id))["ramInUse"] == "<none>":
        assert time.monotonic() < deadline, "no memory use was ever reported"
        time.sleep(0.5)
    assert sampled["ramInUse"].endswith("M") and int(sampled["ramInUse"][:-1]) > 10
    assert float(sampled["cpuCoresInUse"]) >= 0
    v1 = httpx.get(f"{fresh.url}/skaha/v1/session/{session_id}", headers=fresh.http.headers).json()
    assert v1["isFixedResources"] is True and v1["requestedGPUCores"] == "0"
    listing = fresh.http.get("/session", params={"type": "NOTEBOOK", "status": "running"}).json()
    assert [s["id"] for s in listing] == [session_id]
    assert fresh.http.get("/session", params={"status": "Pending"}).json() == []
    public = fresh.http.get("/session", params={"view": "all"}).json()
    assert public == [{"userid": v0["userid"], "type": "notebook", "status": "Running", "startTime": v0["startTime"]}]
    stats = fresh.http.get("/session", params={"view": "stats"}).json()
    assert stats["instances"] == {"session": 1, "desktopApp": 0, "headless": 0, "total": 1}


def test_context_repository_and_images(platform: Instance) -> None:
    context = platform.http.get("/context").json()
    assert set(context) == {"cores", "memoryGB", "gpus"} and 1 in context["cores"]["options"]
    assert platform.http.get("/repository").json() == ["localhost", "images.canfar.net"]
    notebooks = platform.http.get("/image", params={"type": "notebook"}).json()
    listed = f"localhost/{IMAGE}"  # skaha's registry/project/name:tag; a local image's registry is localhost
    assert any(i["id"] == listed and "notebook" in i["types"] and i["digest"].startswith("sha256:") for i in notebooks)
    desktops = platform.http.get("/image", params={"type": "desktop"}).json()
    assert desktops and all("desktop" in i["types"] for i in desktops)
    assert not any("skaha-emulator/gateway" in i["id"] for i in platform.http.get("/image").json())
    bad = platform.http.get("/image", params={"type": "jupyter"})
    assert (bad.status_code, bad.text) == (400, "unknown type: jupyter\n")
    deep = platform.http.get("/session/a/b/c/d")
    assert (deep.status_code, deep.text) == (400, "Invalid request: /skaha/v0/session/a/b/c/d\n")
