"""Strangers in the room: from inside a session of every type, nothing of the platform's or of another
user's is reachable; a desktop's VNC wants its password and its X display its cookie."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dns.message
import dns.query
import docker
import httpx
import pytest
import yaml
from websockets.sync.client import connect
from websockets.typing import Subprotocol

from emulator import labels, naming
from emulator.gateway.base import NAME_SERVER_PORT
from tests.factories import build_test_image, remove_test_image, worker_image_tag
from tests.instance import GATEWAY, PREFIX, SERVICE, Instance

pytestmark = pytest.mark.slow

NOTEBOOK = "skaha-emulator/notebook:latest"
DESKTOP = "skaha-emulator/desktop:latest"
TERMINAL = "skaha-emulator/terminal:latest"
CONTRACT_APP = worker_image_tag("contract-app")
TEST_IMAGES = Path(__file__).resolve().parent.parent / "images"

# Run inside a session: every target that must be out of reach, and what happened.
PROBE = r"""
import json, os, socket, sys
targets = json.loads(sys.argv[1])
found = {}
def tcp(host, port):
    try:
        with socket.create_connection((host, port), timeout=1.5):
            return "connected"
    except OSError as exc:
        return f"refused: {exc.__class__.__name__}"
def default_gateway():
    for line in open("/proc/net/route").read().splitlines()[1:]:
        fields = line.split()
        if fields[1] == "00000000":
            return socket.inet_ntoa(bytes.fromhex(fields[2])[::-1])
found["docker socket"] = [p for p in ("/var/run/docker.sock", "/run/docker.sock") if os.path.exists(p)]
found["engine tcp"] = [tcp(default_gateway(), port) for port in (2375, 2376)]
try:
    found["service name"] = socket.gethostbyname(targets["service_name"])
except OSError:
    found["service name"] = None
found["service address"] = tcp(targets["service_address"], 8000)
found["gateway admin"] = [os.path.exists("/run/caddy-admin"), tcp(targets["gateway_name"], 2019)]
found["other user"] = tcp(targets["other_address"], targets["other_port"])
try:
    found["other user by address"] = socket.gethostbyaddr(targets["other_address"])[0]
except OSError:
    found["other user by address"] = None
try:
    found["other user by name"] = socket.gethostbyname(targets["other_name"])
except OSError:
    found["other user by name"] = None
def dns_query(name):  # one A question, as the gateway's resolver asks the service's name server
    labels = b"".join(bytes([len(part)]) + part.encode() for part in name.split(".")) + b"\0"
    return b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00" + labels + b"\x00\x01\x00\x01"
with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
    udp.settimeout(0.5)  # the name server answers in a millisecond where it can be reached
    try:
        udp.sendto(dns_query(targets["other_name"]), (targets["service_address"], targets["name_server_port"]))
        found["name server"] = f"answered {len(udp.recvfrom(512)[0])} bytes"
    except OSError as exc:
        found["name server"] = f"no answer: {exc.__class__.__name__}"
print(json.dumps(found))
"""


@contextmanager
def _stranger(platform: Instance, name: str, uid: int) -> Iterator[httpx.Client]:
    """A user in no group of the first: an API client speaking as them (their sessions deleted after)."""
    users_file = platform.users_file
    document = yaml.safe_load(users_file.read_text())
    token = secrets.token_urlsafe(32)
    document["users"].append({"name": name, "uid": uid, "gid": uid, "groups": [], "token": token})
    users_file.write_text(yaml.safe_dump(document))
    client = httpx.Client(base_url=f"{platform.url}/skaha/v0", headers={"Authorization": f"Bearer {token}"}, timeout=30)
    try:
        yield client
    finally:
        for session in client.get("/session").json():
            client.delete(f"/session/{session['id']}")


@pytest.fixture(scope="module")
def mallory(platform: Instance) -> Iterator[httpx.Client]:
    with _stranger(platform, "mallory", 20077) as client:
        yield client


@pytest.fixture(scope="module")
def contract_app(docker_client: docker.DockerClient) -> Iterator[str]:
    build_test_image(docker_client, CONTRACT_APP, path=str(TEST_IMAGES / "contract-app"))
    yield CONTRACT_APP
    remove_test_image(docker_client, CONTRACT_APP)


def _launch_as(client: httpx.Client, platform: Instance, **data: str) -> str:
    response = client.post("/session", data=data)
    assert response.status_code == 200, response.text
    session_id = response.text.strip()
    deadline = time.monotonic() + 120
    while client.get(f"/session/{session_id}").json()["status"] != "Running":
        assert time.monotonic() < deadline, platform.service_logs()
        time.sleep(0.2)
    return session_id


def _address(container: Any) -> tuple[str, list[str]]:
    """A container's (the Docker SDK's, untyped) address and the names of its networks."""
    networks = container.attrs["NetworkSettings"]["Networks"]
    return next(iter(networks.values()))["IPAddress"], sorted(networks)


def test_sessions_of_different_users_share_no_network(fresh: Instance, mallory: httpx.Client) -> None:
    mine = fresh.launch()
    # A network whose name merely starts with mallory's must not pass for theirs (the engine's name
    # filter matches parts of names).
    decoy = fresh.docker.networks.create(naming.user_network(PREFIX, "mallory2"))
    try:
        theirs = _launch_as(mallory, fresh, name="m", image=NOTEBOOK, type="notebook")
    finally:
        decoy.remove()
    user = fresh.session(mine)["userid"]
    _, my_networks = _address(fresh.container(mine))
    _, their_networks = _address(fresh.container(theirs))
    assert my_networks == [naming.user_network(PREFIX, user)]
    assert their_networks == [naming.user_network(PREFIX, "mallory")]
    gateway = fresh.docker.containers.get(GATEWAY)
    assert set(my_networks + their_networks) <= set(gateway.attrs["NetworkSettings"]["Networks"])
    # mallory's notebook answers through the gateway, as alice's does
    assert httpx.get(f"{fresh.url}/session/notebook/{theirs}/api", timeout=10).status_code == 200
    mallory.delete(f"/session/{theirs}")
    # Their network stays theirs (a later launch pays nothing for it), holding no session.
    network = fresh.docker.networks.get(naming.user_network(PREFIX, "mallory"))
    assert [c.name for c in network.containers] == [GATEWAY]  # ... holding no session


def test_a_name_that_spells_anothers_container_gets_none_of_its_traffic(fresh: Instance) -> None:
    """A session's name is its hostname, which the engine's DNS answers on every network the gateway shares
    with it, asking the networks in the order of their names: a session named after alice's container, on
    aaron's network (which sorts first), once got her traffic. Such names are refused now; and whatever else
    answers that name on another network, the gateway finds alice's session by the platform's record of its
    address on alice's network."""
    with _stranger(fresh, "aaron", 20078) as aaron:  # "emulate-…-user-aaron" sorts before alice's network
        _launch_as(aaron, fresh, name="first", image=NOTEBOOK, type="notebook")  # aaron's network, joined first
        mine = fresh.launch()
        user = fresh.session(mine)["userid"]
        assert user > "aaron"
        (fresh.arc_dir / "home" / user / "alice-was-here.txt").write_text("mine\n")
        name = naming.session_container(PREFIX, "notebook", mine)
        refused = aaron.post("/session", data={"name": name, "image": NOTEBOOK, "type": "notebook"})
        assert refused.status_code == 400 and "must not start with 'emulate-'" in refused.text
        impostor = fresh.docker.containers.run(  # what answered that name before the names were refused
            NOTEBOOK,
            ["python3", "-m", "http.server", "8888"],
            detach=True,
            hostname=name,
            network=naming.user_network(PREFIX, "aaron"),
            labels={"test": "impostor"},
        )
        try:
            for _ in range(5):
                url = f"{fresh.url}/session/notebook/{mine}/api/contents/arc/home/{user}?token={mine}"
                listing = httpx.get(url, timeout=10)
                assert listing.status_code == 200, listing.text
                assert "alice-was-here.txt" in [item["name"] for item in listing.json()["content"]]
        finally:
            impostor.remove(force=True)


def test_from_inside_every_session_type_nothing_else_is_reachable(
    fresh: Instance, mallory: httpx.Client, contract_app: str
) -> None:
    theirs = _launch_as(mallory, fresh, name="m", image=NOTEBOOK, type="notebook")
    other_address, _ = _address(fresh.container(theirs))
    service = fresh.docker.containers.get(SERVICE)
    service_address, _ = _address(service)
    desktop = fresh.launch(name="desk", type="desktop", image=DESKTOP)
    app_id = fresh.http.post(f"/session/{desktop}/app", data={"image": TERMINAL}).text.strip()
    job = fresh.job(cmd="sleep", args="300")
    notebook = fresh.launch(name="nb")
    web = fresh.launch(name="web", type="contributed", image=contract_app)
    fresh.wait_status(job, "Running")
    deadline = time.monotonic() + 60
    while fresh.http.get(f"/session/{desktop}/app/{app_id}").json()["status"] != "Running":
        assert time.monotonic() < deadline
        time.sleep(0.2)
    targets = {
        "service_name": SERVICE,
        "service_address": service_address,
        "gateway_name": GATEWAY,
        "other_address": other_address,
        "other_port": 8888,
        "other_name": fresh.container(theirs).name,
        "name_server_port": NAME_SERVER_PORT,
    }
    for row in (notebook, desktop, f"{desktop}-{app_id}", job, web):
        container = fresh.container(row)
        host = container.attrs["HostConfig"]
        assert not host["Privileged"] and host["NetworkMode"] != "host" and not host.get("CapAdd")
        assert host["CapDrop"] == ["ALL"] and "no-new-privileges:true" in host["SecurityOpt"]
        result = container.exec_run(["python3", "-c", PROBE, json.dumps(targets)])
        assert result.exit_code == 0, result.output.decode()
        found = json.loads(result.output.decode().strip().splitlines()[-1])
        kind = container.labels[labels.KIND]
        assert found["docker socket"] == [], kind
        assert all(answer.startswith("refused") for answer in found["engine tcp"]), (kind, found)
        assert found["service name"] is None and found["service address"].startswith("refused"), (kind, found)
        assert found["gateway admin"][0] is False and found["gateway admin"][1].startswith("refused"), (kind, found)
        assert found["other user"].startswith("refused"), (kind, found)
        assert found["other user by address"] is None and found["other user by name"] is None, (kind, found)
        assert found["name server"].startswith("no answer"), (kind, found)  # the gateway's alone
    # The same question from this host (which reaches the platform network) is answered: the probe could succeed.
    question = dns.message.make_query(f"{targets['other_name']}.", "A")
    answer = dns.query.udp(question, service_address, port=NAME_SERVER_PORT, timeout=5)
    assert [item.address for rrset in answer.answer for item in rrset] == [other_address]
    # The gateway answers sessions for the API only: the service's own pages are not behind it.
    probe = fresh.container(notebook).exec_run(
        [
            "python3",
            "-c",
            f"import urllib.request as u; u.urlopen('http://{GATEWAY}:8080/openapi.json')",
        ]
    )
    assert probe.exit_code != 0 and b"404" in probe.output


def test_vnc_wants_the_password_and_x_wants_the_cookie(fresh: Instance) -> None:
    desktop = fresh.launch(name="desk", type="desktop", image=DESKTOP)
    with connect(
        f"ws://{fresh.url.removeprefix('http://')}/session/desktop/{desktop}/",
        open_timeout=10,
        subprotocols=[Subprotocol("binary")],
    ) as ws:
        version = ws.recv(timeout=10)
        assert isinstance(version, bytes) and version.startswith(b"RFB 003.008")
        ws.send(version)
        offered = ws.recv(timeout=10)
        assert isinstance(offered, bytes)
        assert list(offered[1 : 1 + offered[0]]) == [2]  # VNC authentication only, never "None" (1)
    # Another session of the same user reaches the X port, but no X connection opens without the cookie.
    notebook = fresh.launch(name="nb")
    display = naming.session_container(PREFIX, "desktop", desktop)
    x_hello = (
        "import socket; s = socket.create_connection(("
        f"'{display}', 6001), timeout=5); "
        "s.sendall(b'l\\x00\\x0b\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00'); print(s.recv(1)[0])"
    )
    answer = fresh.container(notebook).exec_run(["python3", "-c", x_hello])
    assert answer.exit_code == 0 and answer.output.decode().strip() == "0", answer.output  # 0: refused
    # The desktop's own programs hold the cookie (XAUTHORITY).
    assert fresh.exec(desktop, "xdpyinfo >/dev/null && echo ok").strip() == "ok"
