"""The desktop (noVNC) and desktop-apps attached to it through skaha's app API."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import httpx
import pytest
from websockets.sync.client import connect
from websockets.typing import Subprotocol

from emulator import labels
from tests.factories import build_test_image, remove_test_image, worker_image_tag
from tests.instance import Instance, localhost_client

pytestmark = pytest.mark.slow

DESKTOP = "skaha-emulator/desktop:latest"
DS9 = "skaha-emulator/ds9:latest"
TEST_IMAGES = Path(__file__).resolve().parent.parent / "images"


@pytest.fixture
def desktop(fresh: Instance) -> Iterator[dict[str, Any]]:
    session_id = fresh.launch(name="desk", type="desktop", image=DESKTOP)
    yield fresh.session(session_id)


def _windows(platform: Instance, session_id: str) -> str:
    return platform.exec(session_id, "xwininfo -root -tree")


def _wait_window(platform: Instance, session_id: str, title: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while title not in _windows(platform, session_id):
        assert time.monotonic() < deadline, f"no window {title!r} on the desktop"
        time.sleep(0.3)


def test_desktop_contract_and_novnc_through_the_gateway(fresh: Instance, desktop: dict[str, Any]) -> None:
    session_id = desktop["id"]
    assert desktop["connectURL"] == (
        f"{fresh.session_host(session_id)}/session/desktop/{session_id}/"
        f"?password={session_id}&path=session/desktop/{session_id}/"
    )
    assert (desktop["requestedCPUCores"], desktop["requestedRAM"]) == ("0.25", "1G")
    page = localhost_client().get(desktop["connectURL"])
    assert page.status_code == 200 and "noVNC" in page.text
    env = fresh.exec(session_id, "env")
    assert f"VNC_PW={session_id}" in env and "SKAHA_API_VERSION=v0" in env
    assert f"DESKTOP_SESSION_APP_TOKEN={session_id}." in env
    # noVNC's WebSocket reaches websockify, which speaks RFB: the first bytes are the VNC version.
    with connect(
        f"ws://{fresh.url.removeprefix('http://')}/session/desktop/{session_id}/",
        open_timeout=10,
        subprotocols=[Subprotocol("binary")],
    ) as ws:
        version = ws.recv(timeout=10)
        assert isinstance(version, bytes) and version.startswith(b"RFB 003.008")
    # skaha's desktop templates are mounted at /desktopstartup; the Resolution menu is built from them.
    assert "1920x1080" in fresh.exec(session_id, "cat /desktopstartup/skaha-resolutions.properties").split()
    assert "xrandr -s 1280x1024" in fresh.exec(session_id, "cat $HOME/.local/skaha/openbox-menu.xml")
    # The login shell is /sbin/nologin as on CANFAR; the desktop's own xterm starts because the image sets SHELL.
    uid = desktop["runAsUID"]
    assert fresh.exec(session_id, f"getent passwd {uid}").strip().endswith(":/sbin/nologin")
    _wait_window(fresh, session_id, '"terminal"')
    # /scratch: skaha's 10 GiB for desktops, capped at half the desktop's 4 GiB of memory here.
    assert int(fresh.exec(session_id, "df -B1 --output=size /scratch").split()[-1]) == 2 * 1024**3
    apps = len(fresh.http.get("/image", params={"type": "desktop-app"}).json())
    assert apps >= 2  # ds9 and terminal
    logs = fresh.http.get(f"/session/{session_id}", params={"view": "logs"}).text
    assert f"build-menu: {apps} desktop-app image(s) in the menu" in logs


def test_apps_attach_draw_on_the_desktop_and_die_with_it(fresh: Instance, desktop: dict[str, Any]) -> None:
    session_id = desktop["id"]
    response = fresh.http.post(f"/session/{session_id}/app", data={"image": DS9})
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    app_id = response.text.removesuffix("\n")
    assert len(app_id) == 3 and app_id[0].isalpha()
    deadline = time.monotonic() + 30
    while (app := fresh.http.get(f"/session/{session_id}/app/{app_id}").json())["status"] != "Running":
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert (app["id"], app["appid"], app["type"], app["name"]) == (session_id, app_id, "desktop-app", "<none>")
    assert app["connectURL"] == "not-applicable"
    _wait_window(fresh, session_id, "SAOImage ds9")
    listing = fresh.http.get("/session").json()
    assert {(s["id"], s["appid"], s["type"]) for s in listing} == {
        (session_id, "<none>", "desktop"),
        (session_id, app_id, "desktop-app"),
    }
    assert [a["appid"] for a in fresh.http.get(f"/session/{session_id}/app").json()] == [app_id]
    missing = fresh.http.get(f"/session/{session_id}/app/zzz")
    assert (missing.status_code, missing.text) == (
        404,
        f"desktop app with session {session_id} and app ID zzz was not found\n",
    )
    assert fresh.http.delete(f"/session/{session_id}").status_code == 200
    assert fresh.session_containers() == [] and fresh.rows() == []


def test_an_app_can_be_deleted_alone(fresh: Instance, desktop: dict[str, Any]) -> None:
    session_id = desktop["id"]
    app_id = fresh.http.post(
        f"/session/{session_id}/app", data={"image": "skaha-emulator/terminal:latest"}
    ).text.strip()
    deadline = time.monotonic() + 30
    while fresh.http.get(f"/session/{session_id}/app/{app_id}").json()["status"] != "Running":
        assert time.monotonic() < deadline
        time.sleep(0.2)
    _wait_window(fresh, session_id, "terminal-latest")
    listed = [line.split() for line in fresh.emulate("ps").stdout.splitlines()[1:]]
    assert [session_id, app_id, "<none>", "desktop-app"] in [row[:4] for row in listed]
    assert fresh.http.delete(f"/session/{session_id}/app/{app_id}").status_code == 200
    assert fresh.http.get(f"/session/{session_id}/app/{app_id}").status_code == 404
    assert [c.labels[labels.ROW_ID] for c in fresh.session_containers()] == [session_id]
    assert fresh.session(session_id)["status"] == "Running"


def test_the_desktop_calls_the_api_back_with_its_token(fresh: Instance, desktop: dict[str, Any]) -> None:
    session_id = desktop["id"]
    token = fresh.exec(session_id, "printf %s $DESKTOP_SESSION_APP_TOKEN")
    api = f"{fresh.url}/skaha/v0"
    images = httpx.get(f"{api}/image", params={"type": "desktop-app"}, headers={"x-auth-token-skaha": token})
    assert images.status_code == 200 and {i["id"] for i in images.json()} >= {f"localhost/{DS9}"}  # as listed
    forged = httpx.get(f"{api}/image", headers={"x-auth-token-skaha": f"{session_id}.{'0' * 40}"})
    assert (forged.status_code, forged.text) == (401, "Unauthorized\n")
    # The menu's launcher, run inside the desktop, attaches an app with that token, by the id the menu lists.
    app_id = fresh.exec(session_id, "/skaha-system/launch-app.sh localhost/skaha-emulator/terminal:latest").strip()
    assert fresh.http.get(f"/session/{session_id}/app/{app_id}").status_code == 200
    fresh.http.delete(f"/session/{session_id}")
    assert httpx.get(f"{api}/image", headers={"x-auth-token-skaha": token}).status_code == 401


def test_a_menu_with_no_desktop_apps_says_how_to_add_one(fresh: Instance, desktop: dict[str, Any]) -> None:
    # build_menu.py against an API that lists no desktop-app images (served from a folder inside the desktop).
    menu = fresh.exec(
        desktop["id"],
        "mkdir -p /tmp/api/skaha/v0 /tmp/empty && echo '[]' > /tmp/api/skaha/v0/image"
        " && (cd /tmp/api && python3 -m http.server 9999 >/dev/null 2>&1 &) && sleep 1"
        " && HOME=/tmp/empty python3 /skaha-system/build_menu.py 127.0.0.1:9999"
        " && cat /tmp/empty/.local/skaha/openbox-menu.xml",
    )
    assert "No desktop-app images: emulate images build ds9" in menu


def test_apps_need_a_live_desktop_of_the_caller(fresh: Instance) -> None:
    notebook = fresh.launch()
    for target in (notebook, "zzzzzzzz"):
        response = fresh.http.post(f"/session/{target}/app", data={"image": DS9})
        assert (response.status_code, response.text) == (404, f"session {target} not found\n")
    direct = fresh.http.post("/session", data={"name": "x", "image": DS9, "type": "desktop-app"})
    assert direct.status_code == 400


@pytest.fixture(scope="module")
def startup_probe(docker_client: docker.DockerClient) -> Iterator[str]:
    tag = build_test_image(docker_client, worker_image_tag("startup-probe"), path=str(TEST_IMAGES / "startup-probe"))
    yield tag
    remove_test_image(docker_client, tag)


def test_startup_sh_gets_one_argument_the_xterm_launcher(
    fresh: Instance, desktop: dict[str, Any], startup_probe: str
) -> None:
    # Current skaha: /skaha/startup.sh "$XTERM_LAUNCHER", with SKAHA_XTERM_TITLE exported for the launcher.
    session_id = desktop["id"]
    app_id = fresh.http.post(f"/session/{session_id}/app", data={"image": startup_probe}).text.strip()
    deadline = time.monotonic() + 30
    while fresh.http.get(f"/session/{session_id}/app/{app_id}").json()["status"] != "Running":
        assert time.monotonic() < deadline
        time.sleep(0.2)
    title = startup_probe.rsplit("/", 1)[-1].replace(":", "-")  # the app's xterm is named after its image
    _wait_window(fresh, session_id, title)
    logs = fresh.http.get(f"/session/{session_id}", params={"view": "logs"}).text
    expected = f"startup-probe: 1 argument(s): /skaha-system/start-desktop-software-xterm.sh; title={title}"
    assert expected in logs
