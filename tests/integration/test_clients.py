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
from typing import Any

import docker
import httpx
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


def _by_name(platform: Instance, name: str) -> dict[str, Any]:
    listed: list[dict[str, Any]] = platform.http.get("/session").json()
    found = [s for s in listed if s["name"] == name]
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


def _client_files(top: str) -> list[Path]:
    """The installed files of a distribution and everything it requires (this test venv's), for a session."""
    from importlib import metadata

    from packaging.requirements import Requirement

    seen: set[str] = set()
    wanted = [top]
    files: list[Path] = []
    while wanted:
        name = wanted.pop()
        dist = metadata.distribution(name)
        key = dist.metadata["Name"].lower().replace("_", "-")
        if key in seen:
            continue
        seen.add(key)
        files += [Path(str(dist.locate_file(f))) for f in dist.files or [] if not str(f).startswith("..")]
        for line in dist.requires or []:
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                wanted.append(requirement.name)
    return files


def test_canfar_inside_a_session_launches_a_job_and_reads_its_logs(fresh: Instance) -> None:
    """A notebook runs the real canfar client (1.5.2) with nothing set up: CANFAR_URL and CANFAR_TOKEN are in
    its environment, the token its own (it acts as the owner while the session lives, and no longer)."""
    notebook = fresh.launch()
    user = fresh.session(notebook)["userid"]
    site = fresh.arc_dir / "home" / user / "canfar-client"  # the client and its requirements, from this venv
    for file in _client_files("canfar"):
        parts = file.parts
        root = next(i for i in range(len(parts), 0, -1) if Path(*parts[:i]).name == "site-packages")
        target = site / Path(*parts[root:])
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(file, target)
    script = f"""
import os, time
from canfar.sessions import Session
assert os.environ["CANFAR_URL"].endswith("/skaha/v1")
s = Session(errors="raise")
[job] = s.create(name="from-inside", image="{NOTEBOOK}", kind="headless", cmd="echo", args="hello from a job")
for _ in range(600):
    if s.info(job)[0]["status"] in ("Completed", "Succeeded", "Failed"):
        break
    time.sleep(0.1)
print(job, s.info(job)[0]["status"], repr(s.logs(job)[job]))
"""
    env = f"PYTHONPATH=/arc/home/{user}/canfar-client HOME=/tmp CANFAR_CONSOLE__BANNER=false"
    printed = fresh.exec(notebook, f"{env} python3 -c '{script}'").strip().splitlines()[-1]
    job, status, logs = printed.split(" ", 2)
    assert (status, logs) == ("Completed", repr("hello from a job\n"))
    assert fresh.session(job)["userid"] == user  # launched as the notebook's owner
    token = fresh.exec(notebook, "printenv CANFAR_TOKEN").strip()
    # Code in a session acts as its owner, but never reaches the host's folders (`emulate dev --mount`'s).
    mounting = {"name": "m", "image": NOTEBOOK, "type": "notebook", "mount": "/tmp:/opt/host"}
    refused = httpx.post(f"{fresh.url}/skaha/v1/session", data=mounting, headers={"Authorization": f"Bearer {token}"})
    assert refused.status_code == 400 and "a session's own token cannot mount host folders" in refused.text
    fresh.http.delete(f"/session/{notebook}")
    fresh.wait_gone(notebook)
    gone = httpx.get(f"{fresh.url}/skaha/v1/session", headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert gone.status_code == 401  # the session's token died with it
