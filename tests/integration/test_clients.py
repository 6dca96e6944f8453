"""The real clients against the platform: the `canfar` CLI (1.5.2, on /skaha/v1) and the legacy `skaha`
Python client (1.7.0, on /skaha/v0). The CLI exits 0 on many failures, so every step is checked on
the platform's own state."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import docker
import pytest

from tests.instance import Instance

pytestmark = pytest.mark.slow

# canfar names images as CANFAR does (project/name:tag under images.canfar.net): our images, tagged so.
NOTEBOOK = "images.canfar.net/skaha-emulator-test/notebook:latest"
DESKTOP = "images.canfar.net/skaha-emulator-test/desktop:latest"
CANFAR = shutil.which("canfar", path=str(Path(sys.executable).parent)) or "canfar"


@pytest.fixture(scope="module", autouse=True)
def canfar_names(platform: Instance, docker_client: docker.DockerClient) -> Iterator[None]:
    for local, canfar in (("skaha-emulator/notebook:latest", NOTEBOOK), ("skaha-emulator/desktop:latest", DESKTOP)):
        platform.emulate("images", "tag", local, canfar)  # as the README tells canfar users to
        assert docker_client.images.get(canfar).id == docker_client.images.get(local).id
    yield
    for canfar in (NOTEBOOK, DESKTOP):
        docker_client.images.remove(canfar)


def _canfar(platform: Instance, home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "HOME": str(home),  # its config file lives in ~/.canfar
        "CANFAR_URL": f"{platform.url}/skaha/v1",
        "CANFAR_TOKEN": platform.token,
        "CANFAR_CONSOLE__BANNER": "false",
        "COLUMNS": "200",
    }
    result = subprocess.run([CANFAR, *args], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"canfar {' '.join(args)}: {result.stdout}\n{result.stderr}"
    return result


def _by_name(platform: Instance, name: str) -> dict:
    found = [s for s in platform.http.get("/session").json() if s["name"] == name]
    assert len(found) == 1, (name, found)
    return found[0]


def test_the_canfar_cli_works_unchanged(fresh: Instance, tmp_path: Path) -> None:
    _canfar(fresh, tmp_path, "create", "notebook", NOTEBOOK, "-n", "cnb")
    _canfar(fresh, tmp_path, "create", "desktop", DESKTOP, "-n", "cdesk")
    _canfar(fresh, tmp_path, "create", "headless", NOTEBOOK, "-n", "cjob", "--", "python3", "-c", "print(6*7)")
    notebook, desktop, job = (_by_name(fresh, name)["id"] for name in ("cnb", "cdesk", "cjob"))
    fresh.wait_status(notebook, "Running")
    fresh.wait_status(desktop, "Running")
    fresh.wait_status(job, "Succeeded")
    listed = json.loads(_canfar(fresh, tmp_path, "ps", "-a", "-o", "json").stdout)
    assert {notebook, desktop, job} <= {s["id"] for s in listed}
    assert {notebook, desktop, job} <= set(_canfar(fresh, tmp_path, "ps", "-a", "-q").stdout.split())
    info = _canfar(fresh, tmp_path, "info", notebook).stdout
    assert notebook in info and "notebook" in info
    assert "42" in _canfar(fresh, tmp_path, "logs", job).stdout
    assert "Ready" in _canfar(fresh, tmp_path, "events", notebook).stdout
    soon = (datetime.now(UTC) + timedelta(hours=1)).replace(microsecond=0)
    fresh.sql("UPDATE sessions SET expiry_time = ? WHERE id = ?", soon.isoformat(), notebook)
    _canfar(fresh, tmp_path, "renew", notebook)
    renewed = datetime.fromisoformat(fresh.session(notebook)["expiryTime"].replace("Z", "+00:00"))
    assert renewed > soon + timedelta(days=3)
    assert (
        "Running" in _canfar(fresh, tmp_path, "stats").stdout
        or fresh.http.get("/session", params={"view": "stats"}).json()["instances"]["session"] >= 2
    )
    assert "skaha-emulator-test/notebook" in _canfar(fresh, tmp_path, "image", "ls").stdout
    _canfar(fresh, tmp_path, "delete", "-f", notebook, desktop)
    for session_id in (notebook, desktop):
        fresh.wait_gone(session_id)
    assert fresh.rows() == [job]


def test_the_legacy_skaha_client_creates_fetches_destroys(fresh: Instance) -> None:
    from skaha.session import Session

    client = Session(server=f"{fresh.url}/skaha", version="v0", token=fresh.token)
    (session_id,) = client.create(name="legacy", image=NOTEBOOK, kind="headless", cmd="sleep", args="60")
    fresh.wait_status(session_id, "Running")
    assert session_id in {s["id"] for s in client.fetch(kind="headless")}
    assert client.destroy(session_id) == {session_id: True}
    deadline = time.monotonic() + 30
    while session_id in fresh.rows():
        assert time.monotonic() < deadline
        time.sleep(0.2)
