"""Shared fixtures: a whole platform instance of our own, beside any instance a user runs.

The `platform` fixture starts instance `pytest` with `emulate up` (service and
gateway containers, real Caddy) on a free port with its own state, config and /arc
folders, and removes everything that instance created when the session ends; a
failing test prints the service's log.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator

import docker
import pytest

from emulator.runtime.endpoint import client_from_environment
from tests.instance import INSTANCE, Instance, Person, start_instance, stop_instance


@pytest.fixture(scope="session")
def docker_client() -> docker.DockerClient:
    try:
        client = client_from_environment()
        client.ping()
    except docker.errors.DockerException as exc:
        pytest.fail(f"these tests need a Docker engine: {exc}")
    return client


@pytest.fixture(scope="session")
def platform(tmp_path_factory: pytest.TempPathFactory, docker_client: docker.DockerClient) -> Iterator[Instance]:
    platform = start_instance(tmp_path_factory.mktemp("platform"), INSTANCE, docker_client)
    try:
        yield platform
    finally:
        stop_instance(platform, docker_client)


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
    """alice and bob share the group astro; eve is in no group of theirs; boss is an admin (in no group)."""
    found = {}
    people: list[tuple[str, list[str]]] = [
        ("alice", ["--group", "astro"]),
        ("bob", ["--group", "astro"]),
        ("eve", []),
        ("boss", ["--admin"]),
    ]
    for name, groups in people:
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


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    args = getattr(item, "funcargs", {})
    found = next((value for value in args.values() if isinstance(value, Instance)), None)
    if report.failed and call.when == "call" and found is not None:
        report.sections.append(("service log (tail)", found.service_logs()))
    return report
