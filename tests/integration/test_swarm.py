"""Sessions across a Docker Swarm of three engines on this machine (tests/swarm.py): placed by their
reservations, reached through the gateway on every node (WebSockets too), Pending with Swarm's reason when
no machine can take them, failed when their machine is lost while the others carry on; and nothing of
them left on any engine afterwards."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from websockets.sync.client import connect as ws_connect

from emulator import labels
from emulator.host.images import GATEWAY_IMAGE
from emulator.settings import load_settings
from tests.instance import Instance, start_instance, stop_instance
from tests.swarm import Node, SwarmCluster

pytestmark = pytest.mark.slow

NOTEBOOK = "skaha-emulator/notebook:latest"
FAKE_GPU = "GPU-00000000-fake-0000-0000-000000000000"


@pytest.fixture(scope="module")
def cluster() -> Iterator[SwarmCluster]:
    if os.geteuid() != 0:
        pytest.skip("the swarm of engines needs root (network namespaces, dockerd)")
    # The second machine advertises a GPU as Swarm's generic resource (no GPU here: Swarm only counts it).
    swarm = SwarmCluster(extra={2: ["--node-generic-resource", f"NVIDIA-GPU={FAKE_GPU}"]}).start()
    try:
        swarm.load([load_settings().service_image, GATEWAY_IMAGE], [swarm.manager])
        swarm.load([NOTEBOOK])
        yield swarm
    finally:
        swarm.close()


@pytest.fixture(scope="module")
def swarm_platform(cluster: SwarmCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Instance]:
    manager = cluster.manager.client()
    settings = {"DOCKER_HOST": cluster.manager.docker_host, "EMULATE_MAX_SESSIONS": "10"}
    root = tmp_path_factory.mktemp("swarm")
    platform = start_instance(root, "pytest-swarm", manager, "--swarm", settings=settings, host=cluster.manager.address)
    try:
        yield platform
    finally:
        down = platform.emulate("down", "--remove-sessions", check=False)
        live = [node for node in cluster.nodes if node.process is not None and node.process.poll() is None]
        left = _leftovers(live)
        deadline = time.monotonic() + 30
        while any(left.values()) and time.monotonic() < deadline:  # Swarm removes tasks' containers a moment later
            time.sleep(0.5)
            left = _leftovers(live)
        networks = [n.name for n in manager.networks.list() if n.name.startswith(platform.prefix)]
        configs = [c.name for c in manager.configs.list() if c.name.startswith("pytest-swarm-config-")]
        stop_instance(platform, manager)
        assert down.returncode == 0, down.stderr
        assert not any(left.values()), f"`down --remove-sessions` left containers on the machines: {left}"
        assert networks == [] and configs == [], (networks, configs)


def _leftovers(nodes: list[Node]) -> dict[str, list[str]]:
    # The engine's own list, with no inspection of each: Swarm may remove a container between the two.
    return {node.name: [c["Names"][0].lstrip("/") for c in node.client().api.containers(all=True)] for node in nodes}


def _launch(platform: Instance, name: str, **params: Any) -> str:
    response = platform.http.post("/session", data={"name": name, "image": NOTEBOOK, "type": "notebook", **params})
    assert response.status_code == 200, response.text
    return response.text.strip()


def _node_of(platform: Instance, session_id: str) -> str:
    events = platform.http.get(f"/session/{session_id}", params={"view": "events"}).text
    started = [line for line in events.splitlines() if "Started container" in line]
    assert started, events
    return started[0].split(" on ", 1)[1].split()[0]


def _stats(platform: Instance) -> dict[str, Any]:
    stats: dict[str, Any] = platform.http.get("/session", params={"view": "stats"}).json()
    return stats


def test_sessions_spread_by_reservation_and_answer_on_every_node(
    swarm_platform: Instance, cluster: SwarmCluster
) -> None:
    ids = [_launch(swarm_platform, f"spread{i}", cores="2", ram="4") for i in range(3)]
    for session_id in ids:
        swarm_platform.wait_status(session_id, "Running", timeout=180)
    nodes = {_node_of(swarm_platform, session_id) for session_id in ids}
    assert len(nodes) == 3, f"two cores each on three two-core machines: one per machine, not {nodes}"
    # The service's own files reach the other machines as Swarm configs; only /arc is one of their folders.
    manager = cluster.manager.client()
    service = manager.services.list(filters={"label": f"{labels.SESSION_ID}={ids[0]}"})[0]
    container_spec = service.attrs["Spec"]["TaskTemplate"]["ContainerSpec"]
    assert {m["Target"] for m in container_spec["Mounts"]} == {"/arc", "/scratch"}
    carried = {c["File"]["Name"] for c in container_spec["Configs"]}
    assert {"/etc/passwd", "/etc/group", "/skaha-system/start-jupyterlab.sh"} <= carried
    for node in cluster.nodes:  # and the user's name resolves, on every machine, from the carried passwd
        for container in node.client().containers.list(filters={"label": f"{labels.KIND}=notebook"}):
            assert container.exec_run("id -un", user=container.attrs["Config"]["User"]).output.strip() == b"canfar"
    headers = {"Authorization": f"Bearer {swarm_platform.token}"}
    for session_id in ids:  # the gateway, on the manager, reaches each through the user's overlay network
        api = f"{swarm_platform.url}/session/notebook/{session_id}/api"
        assert httpx.get(api, headers=headers, timeout=30).status_code == 200
    session_id = ids[-1]
    base = f"{swarm_platform.url}/session/notebook/{session_id}/api"
    kernel = httpx.post(f"{base}/kernels?token={session_id}", headers=headers, json={}, timeout=30).json()
    ws_url = base.replace("http", "ws", 1) + f"/kernels/{kernel['id']}/channels?token={session_id}"
    with ws_connect(ws_url, additional_headers=headers, open_timeout=15):
        pass
    stats = _stats(swarm_platform)
    assert stats["cores"]["cpuCoresAvailable"] == sum(n["cores"] for n in stats["nodes"]) == 6
    assert [n["coresReserved"] for n in stats["nodes"]] == [2, 2, 2]
    assert all(n["sessions"] == 1 and n["state"] == "ready" for n in stats["nodes"])
    printed = swarm_platform.emulate("nodes").stdout
    assert printed.count("emuswarm-node") == 3 and "(manager)" in printed
    # The portal's platform-load panel, signed in: each machine's share.
    added = swarm_platform.emulate("users", "add", "watcher").stdout
    password = dict(line.split(":", 1) for line in added.splitlines() if ":" in line)["password"].strip()
    with httpx.Client(base_url=swarm_platform.url, timeout=30) as browser:
        signed = browser.post("/science-portal/login", data={"username": "watcher", "password": password})
        assert signed.status_code in (200, 303), signed.text
        panel = browser.get("/science-portal/fragments/load").text
    assert all(f"emuswarm-node{i}" in panel for i in (1, 2, 3)) and "0.0 / 2.0" in panel, panel


def test_a_deleted_session_leaves_nothing_on_its_machine(swarm_platform: Instance, cluster: SwarmCluster) -> None:
    session_id = _launch(swarm_platform, "brief")
    swarm_platform.wait_status(session_id, "Running", timeout=180)
    node = next(n for n in cluster.nodes if n.name == _node_of(swarm_platform, session_id))
    manager = cluster.manager.client()
    service = manager.services.list(filters={"label": f"{labels.SESSION_ID}={session_id}"})[0]
    used = {c["ConfigID"] for c in service.attrs["Spec"]["TaskTemplate"]["ContainerSpec"]["Configs"]}
    assert swarm_platform.http.delete(f"/session/{session_id}").status_code == 200
    deadline = time.monotonic() + 30
    while node.client().containers.list(all=True, filters={"label": f"{labels.SESSION_ID}={session_id}"}):
        assert time.monotonic() < deadline, f"its container stayed on {node.name}"
        time.sleep(0.3)
    assert not manager.services.list(filters={"label": f"{labels.SESSION_ID}={session_id}"})
    still_used = {
        c["ConfigID"]
        for s in manager.services.list()
        for c in s.attrs["Spec"]["TaskTemplate"]["ContainerSpec"].get("Configs") or []
    }
    remaining = {c.id for c in manager.configs.list()}
    assert not (used - still_used) & remaining, "configs no session uses any more stayed"


def test_a_launch_no_machine_can_take_waits_with_the_reason(swarm_platform: Instance) -> None:
    waiting = _launch(swarm_platform, "toolarge", cores="2", ram="4")
    deadline = time.monotonic() + 30
    events = ""
    while "insufficient resources" not in events:
        assert time.monotonic() < deadline, f"no reason given for waiting: {events}"
        time.sleep(0.5)
        events = swarm_platform.http.get(f"/session/{waiting}", params={"view": "events"}).text
    assert "FailedScheduling" in events and "no suitable node" in events
    assert swarm_platform.session(waiting)["status"] == "Pending"
    # A machine frees up: the waiting session is placed there.
    running = [s for s in swarm_platform.http.get("/session").json() if s["status"] == "Running"]
    freed = _node_of(swarm_platform, running[0]["id"])
    assert swarm_platform.http.delete(f"/session/{running[0]['id']}").status_code == 200
    swarm_platform.wait_status(waiting, "Running", timeout=180)
    assert _node_of(swarm_platform, waiting) == freed


def test_gpus_are_placed_by_swarm_on_the_machine_that_has_them(swarm_platform: Instance, cluster: SwarmCluster) -> None:
    context = swarm_platform.http.get("/context").json()
    assert context["gpus"]["options"] == [1]
    with_gpu = _launch(swarm_platform, "gpu", gpus="1")
    swarm_platform.wait_status(with_gpu, "Running", timeout=180)
    assert _node_of(swarm_platform, with_gpu) == cluster.nodes[1].name
    container = cluster.nodes[1].client().containers.list(filters={"label": f"{labels.SESSION_ID}={with_gpu}"})[0]
    environment = container.attrs["Config"]["Env"]
    assert f"DOCKER_RESOURCE_NVIDIA-GPU={FAKE_GPU}" in environment, environment  # what the NVIDIA runtime reads
    second = _launch(swarm_platform, "gpu2", gpus="1")
    deadline = time.monotonic() + 30
    while "insufficient resources" not in swarm_platform.http.get(f"/session/{second}", params={"view": "events"}).text:
        assert time.monotonic() < deadline, "a second GPU session did not wait for the only GPU"
        time.sleep(0.5)
    stats = _stats(swarm_platform)
    assert stats["gpu"] == {"requestedGPU": 1, "gpuAvailable": 1}
    assert [n["gpus"] for n in stats["nodes"]] == [0, 1, 0]
    for session_id in (second, with_gpu):
        assert swarm_platform.http.delete(f"/session/{session_id}").status_code == 200


def test_a_lost_machine_fails_its_sessions_and_the_others_carry_on(
    swarm_platform: Instance, cluster: SwarmCluster
) -> None:
    running = [s["id"] for s in swarm_platform.http.get("/session").json() if s["status"] == "Running"]
    where = {session_id: _node_of(swarm_platform, session_id) for session_id in running}
    lost = next(node for node in cluster.nodes[1:] if node.name in where.values())
    cluster.stop_node(lost)
    victims = [s for s, node in where.items() if node == lost.name]
    for session_id in victims:
        failed = swarm_platform.wait_status(session_id, "Failed", timeout=90)
        assert failed["status"] == "Failed"
        events = swarm_platform.http.get(f"/session/{session_id}", params={"view": "events"}).text
        assert f"its machine was lost: node {lost.name}" in events
    headers = {"Authorization": f"Bearer {swarm_platform.token}"}
    for session_id in (s for s in running if s not in victims):
        assert swarm_platform.session(session_id)["status"] == "Running"
        api = f"{swarm_platform.url}/session/notebook/{session_id}/api"
        assert httpx.get(api, headers=headers, timeout=30).status_code == 200
    states = {n["name"]: n["state"] for n in _stats(swarm_platform)["nodes"]}
    assert states[lost.name] == "down"
