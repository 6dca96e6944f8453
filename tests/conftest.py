"""Shared fixtures: a whole platform instance of our own, beside any instance a user runs.

The `platform` fixture starts instance `pytest` with `emulate up` (service and
gateway containers, real Caddy) on a free port with its own state, config and /arc
folders, and removes everything that instance created when the session ends; a
failing test prints the service's log.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import docker
import pytest

from tests.instance import INSTANCE, LABEL, Instance, free_port, remove_instance


@pytest.fixture(scope="session")
def docker_client() -> docker.DockerClient:
    try:
        client = docker.from_env()
        client.ping()
    except docker.errors.DockerException as exc:
        pytest.fail(f"these tests need a Docker engine: {exc}")
    return client


@pytest.fixture(scope="session")
def platform(tmp_path_factory: pytest.TempPathFactory, docker_client: docker.DockerClient) -> Iterator[Instance]:
    remove_instance(docker_client)  # what a crashed earlier run left
    root = tmp_path_factory.mktemp("platform")
    port = free_port()
    env = {
        **os.environ,
        "EMULATE_INSTANCE": INSTANCE,
        "EMULATE_PORT": str(port),
        "EMULATE_STATE_DIR": str(root / "state"),
        "EMULATE_CONFIG_DIR": str(root / "config"),
        "EMULATE_ARC_DIR": str(root / "arc"),
        "EMULATE_LOOP_INTERVAL": "0.5",
    }
    env.pop("EMULATE_URL", None)
    env.pop("EMULATE_TOKEN", None)
    first = Instance(url=f"http://127.0.0.1:{port}", token="", env=env, root=root, docker=docker_client)
    first.emulate("up", "--no-build")
    token = first.emulate("token").stdout.strip()
    platform = Instance(url=first.url, token=token, env=env, root=root, docker=docker_client)
    try:
        yield platform
    finally:
        platform.emulate("down", "--remove-sessions", check=False)
        left = [c.name for c in docker_client.containers.list(all=True, filters={"label": LABEL})]
        remove_instance(docker_client)
    assert left == [], f"`emulate down --remove-sessions` left containers behind: {left}"


@pytest.fixture
def fresh(platform: Instance) -> Iterator[Instance]:
    """The platform with no sessions before and after the test."""
    platform.delete_all()
    yield platform
    platform.delete_all()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    args = getattr(item, "funcargs", {})
    found = args.get("platform") or args.get("fresh")
    if report.failed and call.when == "call" and found is not None:
        report.sections.append(("service log (tail)", found.service_logs()))
