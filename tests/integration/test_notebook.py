"""A notebook launched as CANFAR launches it, used as a user would: through the gateway."""

from __future__ import annotations

import httpx
import pytest

from tests.instance import Instance, localhost_client
from tests.jupyter import execute

pytestmark = pytest.mark.slow


def test_notebook_answers_at_its_connect_url_and_runs_code(fresh: Instance) -> None:
    session_id = fresh.launch(name="analysis", cores="1", ram="2")
    session = fresh.session(session_id)
    user = fresh.session(session_id)["userid"]
    assert session["connectURL"] == (
        f"{fresh.session_host(session_id)}/session/notebook/{session_id}/lab/tree/arc/home/{user}?token={session_id}"
    )
    page = localhost_client().get(session["connectURL"])
    assert page.status_code == 200 and "JupyterLab" in page.text

    api = f"{fresh.url}/session/notebook/{session_id}/api"
    auth = {"Authorization": f"token {session_id}"}
    assert httpx.get(f"{api}/kernels", timeout=10).status_code == 403  # the token is the only lock
    kernel = httpx.post(f"{api}/kernels", headers=auth, json={"name": "python3"}, timeout=30).json()
    ws_url = (
        f"ws://{fresh.url.removeprefix('http://')}/session/notebook/{session_id}/api/kernels/{kernel['id']}"
        f"/channels?token={session_id}"
    )
    assert execute(ws_url, "import os; print(os.getcwd()); 6 * 7").split() == [f"/arc/home/{user}", "42"]


def test_gateway_passes_32_kib_headers(fresh: Instance) -> None:
    session_id = fresh.launch()
    big_cookie = "x" * (32 * 1024)
    response = httpx.get(
        f"{fresh.url}/session/notebook/{session_id}/api", headers={"Cookie": f"big={big_cookie}"}, timeout=10
    )
    assert response.status_code == 200, response.status_code


def test_port_forwarding_reaches_a_server_the_user_starts(fresh: Instance) -> None:
    session_id = fresh.launch()
    fresh.exec(session_id, "echo forwarded > $HOME/hello.txt")
    container = fresh.container(session_id)
    container.exec_run(["sh", "-c", "cd $HOME && exec python3 -m http.server 8000"], detach=True)
    url = f"{fresh.url}/session/notebook/{session_id}/proxy/8000/"
    for _ in range(100):
        response = httpx.get(url, timeout=5)
        if response.status_code == 200:
            break
    assert response.status_code == 200 and "hello.txt" in response.text
    assert httpx.get(f"{url}hello.txt", timeout=5).text == "forwarded\n"
    # Another port of the same session that nothing listens on is a gateway error, not another session.
    assert httpx.get(f"{fresh.url}/session/notebook/{session_id}/proxy/8001/", timeout=5).status_code == 502
