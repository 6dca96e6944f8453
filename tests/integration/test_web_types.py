"""CARTA, Firefly and contributed sessions: launched under their real contracts, routed under their prefixes.

CARTA and Firefly cannot be built here, so their launch and routing are proven with the
contract-test app of tests/images/contract-app (which is neither); the contributed type runs the
real marimo recipe.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest
from websockets.sync.client import connect

from tests.factories import build_test_image, remove_test_image, worker_image_tag
from tests.instance import Instance, localhost_client

pytestmark = pytest.mark.slow

CONTRACT_APP = worker_image_tag("contract-app")


@pytest.fixture(scope="module")
def contract_app(docker_client: docker.DockerClient) -> Iterator[str]:
    folder = Path(__file__).resolve().parent.parent / "images" / "contract-app"
    build_test_image(docker_client, CONTRACT_APP, path=str(folder))
    yield CONTRACT_APP
    remove_test_image(docker_client, CONTRACT_APP)


def _launch(platform: Instance, session_type: str, image: str) -> dict[str, Any]:
    session_id = platform.launch(name=session_type, type=session_type, image=image)
    return platform.session(session_id)


def _ws_echo(url: str) -> str:
    with connect(url, open_timeout=10) as ws:
        ws.send("ping")
        return str(ws.recv(timeout=10))


def test_carta_serves_http_and_websocket_under_its_kept_prefix(fresh: Instance, contract_app: str) -> None:
    session = _launch(fresh, "carta", contract_app)
    session_id = session["id"]
    assert session["connectURL"] == f"{fresh.session_host(session_id)}/session/carta/{session_id}/"
    report = localhost_client().get(session["connectURL"]).json()
    assert report["kind"] == "carta" and report["path"] == f"/session/carta/{session_id}/"
    assert report["env"]["SKAHA_SESSION_URL_PATH"] == f"/session/carta/{session_id}"
    assert report["env"]["CARTA_PORT"] == "6901" and report["env"]["UWS_HTTP_MAX_HEADERS_SIZE"] == "32768"
    assert report["env"]["SKAHA_TOP_LEVEL_DIR"] == "/arc" and report["env"]["SKAHA_PROJECTS_DIR"] == "/arc/projects"
    ws = f"ws://{fresh.url.removeprefix('http://')}/session/carta/{session_id}/ws"
    assert _ws_echo(ws) == "echo: ping"


def test_firefly_gets_its_base_url_forwarded_proto_and_fixed_memory(fresh: Instance, contract_app: str) -> None:
    session = _launch(fresh, "firefly", contract_app)
    session_id = session["id"]
    assert session["connectURL"] == f"{fresh.session_host(session_id)}/session/firefly/{session_id}/firefly/"
    report = localhost_client().get(session["connectURL"]).json()
    assert report["kind"] == "firefly" and report["path"] == f"/session/firefly/{session_id}/firefly/"
    assert report["x_forwarded_proto"] == "http"
    assert report["env"]["baseURL"] == f"/session/firefly/{session_id}/"
    assert report["env"]["CADC_SSO_COOKIE_NAME"] == "CADC_SSO" and "youcat" in report["env"]["PROPS_FIREFLY_OPTIONS"]
    assert session["requestedRAM"] == "4G" and session["requestedCPUCores"] == "0.1"
    memory = fresh.exec(
        session_id, "cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max"
    )
    assert int(memory) == 4 * 1024**3


def test_contributed_marimo_renders_under_the_stripped_prefix(fresh: Instance) -> None:
    session = _launch(fresh, "contributed", "skaha-emulator/marimo:latest")
    session_id = session["id"]
    assert session["connectURL"] == f"{fresh.session_host(session_id)}/session/contrib/{session_id}/"
    page = localhost_client().get(session["connectURL"])
    assert page.status_code == 200 and "marimo" in page.text
    script = re.search(r'src="\./(assets/[^"]+\.js)"', page.text)
    assert script is not None
    asset = localhost_client().get(f"{session['connectURL']}{script.group(1)}")
    assert asset.status_code == 200 and "javascript" in asset.headers["content-type"]
    bare = localhost_client().get(session["connectURL"].rstrip("/"))
    assert (bare.status_code, bare.headers["location"]) == (308, f"/session/contrib/{session_id}/")


def test_contributed_websocket_passes_with_the_prefix_stripped(fresh: Instance, contract_app: str) -> None:
    session = _launch(fresh, "contributed", contract_app)
    report = localhost_client().get(f"{session['connectURL']}deep/path").json()
    assert report["path"] == "/deep/path"  # the app sees "/" paths: the prefix was stripped
    ws = f"ws://{fresh.url.removeprefix('http://')}/session/contrib/{session['id']}/ws"
    assert _ws_echo(ws) == "echo: ping"


def test_a_streamed_response_reaches_the_client_as_it_is_written(fresh: Instance, contract_app: str) -> None:
    """A response without a Content-Length (a log tail, a progress stream, server-sent events) is passed on
    write by write, not held until it ends: the app sends one line and then nothing for a minute."""
    session = _launch(fresh, "contributed", contract_app)
    with localhost_client().stream("GET", f"{session['connectURL']}stream") as response:
        assert response.status_code == 200 and "content-length" not in response.headers
        assert next(response.iter_lines()) == "first line"
