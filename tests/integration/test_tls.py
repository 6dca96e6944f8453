"""`emulate up --tls`: HTTPS from the gateway's own CA, which `up` names; everything works through it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import docker
import httpx
import pytest

from tests.instance import free_port, remove_instance

pytestmark = pytest.mark.slow

INSTANCE = "pytest-tls"


@pytest.fixture(scope="module")
def tls_instance(tmp_path_factory: pytest.TempPathFactory, docker_client: docker.DockerClient) -> Iterator[dict]:
    remove_instance(docker_client, INSTANCE)
    root = tmp_path_factory.mktemp("tls")
    port = free_port()
    env = {
        **os.environ,
        "EMULATE_INSTANCE": INSTANCE,
        "EMULATE_PORT": str(port),
        "EMULATE_STATE_DIR": str(root / "state"),
        "EMULATE_CONFIG_DIR": str(root / "config"),
        "EMULATE_ARC_DIR": str(root / "arc"),
    }
    env.pop("EMULATE_URL", None)
    env.pop("EMULATE_TOKEN", None)

    def emulate(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "emulator", *args], env=env, capture_output=True, text=True, timeout=300
        )

    started = emulate("up", "--no-build", "--tls")
    assert started.returncode == 0, started.stderr
    try:
        yield {"env": env, "emulate": emulate, "port": port, "up": started.stdout, "root": root}
    finally:
        emulate("down", "--remove-sessions")
        remove_instance(docker_client, INSTANCE)


def test_https_from_the_named_ca_and_a_session_through_it(tls_instance: dict) -> None:
    ca = Path(tls_instance["root"]) / "state" / "gateway-data" / "caddy" / "pki" / "authorities" / "local" / "root.crt"
    assert f"trust {ca}" in tls_instance["up"] and ca.exists()
    url = f"https://127.0.0.1:{tls_instance['port']}"
    assert httpx.get(f"{url}/skaha/availability", verify=str(ca), timeout=10).status_code == 200
    plain = httpx.get(f"http://127.0.0.1:{tls_instance['port']}/skaha/availability", timeout=5)
    assert plain.status_code == 400 and "HTTPS" in plain.text  # HTTPS only
    token = tls_instance["emulate"]("token").stdout.strip()
    api = httpx.Client(
        base_url=f"{url}/skaha/v0", headers={"Authorization": f"Bearer {token}"}, verify=str(ca), timeout=30
    )
    session_id = api.post(
        "/session", data={"name": "tls", "image": "skaha-emulator/notebook:latest", "type": "notebook"}
    ).text.strip()
    deadline = time.monotonic() + 120
    while (session := api.get(f"/session/{session_id}").json())["status"] != "Running":
        assert time.monotonic() < deadline, session
        time.sleep(0.2)
    assert session["connectURL"].startswith(f"https://127.0.0.1:{tls_instance['port']}/session/notebook/")
    assert httpx.get(f"{url}/session/notebook/{session_id}/api", verify=str(ca), timeout=10).status_code == 200
    listed = tls_instance["emulate"]("ps")  # the CLI trusts the instance's CA by itself
    assert listed.returncode == 0 and session_id in listed.stdout, listed.stderr
