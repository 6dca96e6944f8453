"""`up` on the real engine: a platform container that will not start is made again, not re-started forever;
one whose first start fails leaves nothing behind; `status` says where the instance is and on what engine."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import docker
import docker.errors
import pytest

from emulator import labels
from emulator.host.instance import InstanceContainers
from emulator.settings import Settings
from tests.instance import free_port, remove_instance

INSTANCE = "pytest-engine"
IMAGE = "skaha-emulator/base:bookworm"


@pytest.fixture
def containers(tmp_path: Path, docker_client: docker.DockerClient) -> Iterator[InstanceContainers]:
    settings = Settings(instance=INSTANCE, state_dir=tmp_path / "state", arc_dir=tmp_path / "arc")
    made = InstanceContainers(settings, docker_client)
    made.ensure_network()
    yield made
    remove_instance(docker_client, INSTANCE)


def test_a_container_that_would_not_start_is_made_again(
    containers: InstanceContainers, docker_client: docker.DockerClient
) -> None:
    name = f"{Settings(instance=INSTANCE).prefix}-probe"
    own = labels.platform_labels(INSTANCE, labels.ROLE_HELPER)
    # As a failed `up` leaves one (engines.md S1): same image and configuration, but refused at every start.
    stuck = docker_client.containers.create(
        IMAGE, ["/no/such/program"], name=name, labels={**own, labels.CONFIG_HASH: "config"}
    )
    with pytest.raises(docker.errors.APIError):
        stuck.start()
    containers._ensure(name, IMAGE, "config", command=["sleep", "600"], labels=own)
    again = docker_client.containers.get(name)
    assert again.id != stuck.id and again.status == "running"
    assert again.attrs["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped"


def test_a_first_start_that_fails_leaves_no_container(
    containers: InstanceContainers, docker_client: docker.DockerClient
) -> None:
    name = f"{Settings(instance=INSTANCE).prefix}-probe"
    with pytest.raises(docker.errors.APIError):
        containers._ensure(name, IMAGE, "config", command=["/no/such/program"])
    with pytest.raises(docker.errors.NotFound):
        docker_client.containers.get(name)


@pytest.mark.slow
def test_status_shows_the_url_up_used_and_the_engine(tmp_path: Path, docker_client: docker.DockerClient) -> None:
    port = free_port()
    folders = {f"EMULATE_{name.upper()}_DIR": str(tmp_path / name) for name in ("state", "config", "arc")}
    env = {k: v for k, v in os.environ.items() if k not in ("EMULATE_PORT", "EMULATE_URL")} | folders

    def emulate(*args: str) -> str:
        command = [sys.executable, "-m", "emulator", "--instance", INSTANCE, *args]
        done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=180)
        assert done.returncode == 0, done.stderr
        return done.stdout

    try:
        emulate("up", "--no-build", "--port", str(port))
        shown = emulate("status")
        assert f"http://127.0.0.1:{port}" in shown and "engine    Docker" in shown
        state = json.loads(emulate("status", "--json"))
        assert state["url"] == f"http://127.0.0.1:{port}" and state["facts"]["kind"] == "docker"
        assert state["engine"].startswith(("Docker", "rootless Docker"))
    finally:
        emulate("down")
        remove_instance(docker_client, INSTANCE)
