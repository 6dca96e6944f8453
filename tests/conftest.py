"""Shared fixtures: a whole platform instance of our own, beside any instance a user runs.

The `platform` fixture starts instance `pytest` with `emulate up` (service and
gateway containers, real Caddy) on a free port with its own state, config and /arc
folders, and removes everything that instance created when the session ends; a
failing test prints the service's log.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import docker
import pytest

from emulator.runtime.endpoint import client_from_environment
from tests.instance import INSTANCE, Instance, free_port, remove_instance


@pytest.fixture(scope="session")
def docker_client() -> docker.DockerClient:
    try:
        client = client_from_environment()
        client.ping()
    except docker.errors.DockerException as exc:
        pytest.fail(f"these tests need a Docker engine: {exc}")
    return client


def start_instance(
    root: Path,
    instance: str,
    docker_client: docker.DockerClient,
    *up: str,
    settings: dict[str, str] | None = None,
    host: str = "127.0.0.1",
) -> Instance:
    """An instance of the suite's own (`emulate up --no-build *up`) on a free port, with its own folders
    (and any EMULATE_* `settings` of its own, DOCKER_HOST among them), reached at `host`."""
    remove_instance(docker_client, instance)  # what a crashed earlier run left
    port = free_port()
    env = {
        **os.environ,
        "EMULATE_INSTANCE": instance,
        "EMULATE_PORT": str(port),
        "EMULATE_STATE_DIR": str(root / "state"),
        "EMULATE_CONFIG_DIR": str(root / "config"),
        "EMULATE_ARC_DIR": str(root / "arc"),
        "EMULATE_LOOP_INTERVAL": "0.5",
        **(settings or {}),
    }
    env.pop("EMULATE_URL", None)
    env.pop("EMULATE_TOKEN", None)
    scheme = "https" if "--tls" in up else "http"
    first = Instance(url=f"{scheme}://{host}:{port}", token="", env=env, root=root, docker=docker_client)
    first.emulate("up", "--no-build", *(("--host", host) if host != "127.0.0.1" else ()), *up)
    token = first.emulate("token").stdout.strip()
    ca = root / "state" / "gateway-data" / "caddy" / "pki" / "authorities" / "local" / "root.crt"
    verify = str(ca) if scheme == "https" else True
    return Instance(url=first.url, token=token, env=env, root=root, docker=docker_client, verify=verify)


def stop_instance(instance: Instance, docker_client: docker.DockerClient) -> None:
    instance.emulate("down", "--remove-sessions", check=False)
    left = [c.name for c in docker_client.containers.list(all=True, filters={"label": instance.label})]
    remove_instance(docker_client, instance.env["EMULATE_INSTANCE"])
    assert left == [], f"`emulate down --remove-sessions` left containers behind: {left}"


@pytest.fixture(scope="session")
def platform(tmp_path_factory: pytest.TempPathFactory, docker_client: docker.DockerClient) -> Iterator[Instance]:
    platform = start_instance(tmp_path_factory.mktemp("platform"), INSTANCE, docker_client)
    try:
        yield platform
    finally:
        stop_instance(platform, docker_client)


@dataclass(frozen=True)
class Person:
    name: str
    password: str
    token: str


@pytest.fixture(scope="session")
def secured(tmp_path_factory: pytest.TempPathFactory, docker_client: docker.DockerClient) -> Iterator[Instance]:
    """A second instance with sign-in on its session routes (`up --auth`)."""
    # Sign-in on: registries at private addresses are refused unless listed, and the suite's are on loopback.
    registries = {"EMULATE_REGISTRIES": '["127.0.0.1"]'}
    instance = start_instance(
        tmp_path_factory.mktemp("secured"), f"{INSTANCE}-auth", docker_client, "--auth", settings=registries
    )
    try:
        yield instance
    finally:
        stop_instance(instance, docker_client)


@pytest.fixture(scope="session")
def people(secured: Instance) -> dict[str, Person]:
    """alice and bob share the group astro; eve is in no group of theirs."""
    found = {}
    for name, groups in (("alice", ["--group", "astro"]), ("bob", ["--group", "astro"]), ("eve", [])):
        printed = secured.emulate("users", "add", name, *groups).stdout
        values = dict(line.split(": ", 1) for line in printed.splitlines() if ": " in line)
        found[name] = Person(name, values["password"].strip(), values["token"].strip())
    return found


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
    found = next((value for value in args.values() if isinstance(value, Instance)), None)
    if report.failed and call.when == "call" and found is not None:
        report.sections.append(("service log (tail)", found.service_logs()))
