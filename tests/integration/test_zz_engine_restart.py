"""The Docker engine restarted under running sessions (this module runs last: it stops every container).

The platform must come back by itself (its containers restart with the engine), report each
session as the engine has it, and keep /arc whole. Runs where the test may restart the engine: as
root, with dockerd started by hand (as `.ci/run` does) or by systemd.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import docker
import httpx
import pytest

from tests.instance import Instance

pytestmark = [pytest.mark.slow, pytest.mark.alone]


def _dockerd() -> tuple[int, list[str]] | None:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                argv = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if argv and Path(argv[0].decode()).name == "dockerd":
                return int(entry.name), [a.decode() for a in argv if a]
    return None


def _restart_engine() -> None:
    found = _dockerd()
    if found is None or os.geteuid() != 0:
        pytest.skip("restarting the engine needs root and a local dockerd")
    pid, argv = found
    if "docker.service" in Path(f"/proc/{pid}/cgroup").read_text() and shutil.which("systemctl"):
        subprocess.run(["systemctl", "restart", "docker"], check=True, timeout=120)
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 60
    while Path(f"/proc/{pid}").exists():
        assert time.monotonic() < deadline, "dockerd did not stop"
        time.sleep(0.2)
    with open("/tmp/dockerd-restarted-by-tests.log", "ab") as log:
        subprocess.Popen(argv, stdout=log, stderr=log, start_new_session=True)


def _engine_back(timeout: float = 60) -> docker.DockerClient:
    deadline = time.monotonic() + timeout
    while True:
        try:
            client = docker.from_env()
            client.ping()
            return client
        except docker.errors.DockerException:
            assert time.monotonic() < deadline, "the engine did not come back"
            time.sleep(0.5)


def test_an_engine_restart_is_survived(fresh: Instance) -> None:
    session_id = fresh.launch()
    user = fresh.session(session_id)["userid"]
    fresh.exec(session_id, "echo kept > $HOME/engine-restart.txt")
    _restart_engine()
    client = _engine_back()
    fresh.docker = client
    deadline = time.monotonic() + 90
    while True:  # the service and gateway restart with the engine (restart policy), then reconcile
        try:
            if httpx.get(f"{fresh.url}/skaha/v0/session", headers=fresh.http.headers, timeout=5).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, "the platform did not come back by itself"
        time.sleep(0.5)
    container = fresh.container(session_id)
    container.reload()
    deadline = time.monotonic() + 30
    while True:  # reported as the engine has it: running again, or ended with the engine's exit code
        status = fresh.session(session_id)["status"]
        if (container.status == "running") == (status in ("Running", "Pending")) and status != "Terminating":
            break
        assert time.monotonic() < deadline, (container.status, status)
        time.sleep(0.5)
        container.reload()
    assert (fresh.arc_dir / "home" / user / "engine-restart.txt").read_text() == "kept\n"
    relaunched = fresh.launch(name="after")  # and it launches again
    assert fresh.answers(relaunched) == 200
