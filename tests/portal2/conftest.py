"""Fixtures for the real Science Portal 2.0 journey: its build (cached), an emulator instance of its own with
sign-in on, a user of it, the portal's Node server pointed at that instance, and a browser page.

Opt-in: the tests here are marked `portal2` (`make test-portal2 SCIENCE_PORTAL_SRC=...`) and skip without
SCIENCE_PORTAL_SRC. A failure reports the portal's server log beside the page's problems and the service log.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import time
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path

import docker
import httpx
import pytest

from tests.browser.conftest import browser, page  # noqa: F401  (the browser tests' Chromium and watched page)
from tests.browser.helpers import problems
from tests.instance import INSTANCE, Instance, Person, free_port, start_instance, stop_instance
from tests.portal2.build import Built, build

SOURCE = os.environ.get("SCIENCE_PORTAL_SRC", "")
USER = "sptwo"  # the portal's user on the instance


@dataclass
class Portal:
    url: str
    log: Path  # the Node server's stdout and stderr
    built: Built


@pytest.fixture(scope="session")
def built() -> Built:
    made = build(Path(SOURCE).resolve())
    how = f"built in {made.seconds:.0f} s" if made.seconds else "cached build"
    print(f"\nScience Portal {made.source}: {how}")
    return made


@pytest.fixture(scope="session")
def instance(tmp_path_factory: pytest.TempPathFactory, docker_client: docker.DockerClient) -> Iterator[Instance]:
    """An instance of this test's own with sign-in on (`up --auth`), as a CANFAR user meets it."""
    # (The portal offers only images whose registry GET /repository lists: localhost, this machine's, by default.)
    root = tmp_path_factory.mktemp("portal2")
    started = start_instance(root, f"{INSTANCE}-portal2", docker_client, "--auth")
    try:
        yield started
    finally:
        stop_instance(started, docker_client)


@pytest.fixture(scope="session")
def person(instance: Instance) -> Person:
    printed = instance.emulate("users", "add", USER).stdout
    values = dict(line.split(": ", 1) for line in printed.splitlines() if ": " in line)
    return Person(USER, values["password"].strip(), values["token"].strip())


def portal_env(instance: Instance, port: int) -> dict[str, str]:
    """The portal's run-time settings (CANFAR mode), every upstream our instance."""
    return {
        "PATH": os.environ["PATH"],
        "HOME": os.environ.get("HOME", "/tmp"),
        "NODE_ENV": "production",
        "NEXT_TELEMETRY_DISABLED": "1",
        "NEXT_USE_CANFAR": "true",
        "NEXT_PUBLIC_USE_CANFAR": "true",
        "SKAHA_API": f"{instance.url}/skaha",
        "LOGIN_API": f"{instance.url}/ac",
        "SERVICE_STORAGE_API": f"{instance.url}/arc/nodes/home/",
        "AUTH_SECRET": secrets.token_hex(32),
        "AUTH_TRUST_HOST": "true",
        "PORT": str(port),
        "HOSTNAME": "127.0.0.1",
    }


def wait_answering(url: str, server: subprocess.Popen[bytes], log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if server.poll() is not None:
            raise AssertionError(f"the portal exited ({server.returncode}):\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(url, timeout=5).status_code < 500:
                return
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, f"the portal did not answer in {timeout:.0f} s:\n{log.read_text()[-3000:]}"
        time.sleep(0.3)


@pytest.fixture(scope="session")
def portal(built: Built, instance: Instance, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Portal]:
    port = free_port()
    log = tmp_path_factory.mktemp("portal2-server") / "server.log"
    with log.open("wb") as out:
        server = subprocess.Popen(
            ["node", str(built.server)],
            cwd=built.server.parent,
            env=portal_env(instance, port),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_answering(f"{url}/api/public-config", server, log)
        yield Portal(url, log, built)
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    args = getattr(item, "funcargs", {})
    if report.failed and call.when == "call":
        if "page" in args:
            report.sections.append(("portal's page problems", "\n".join(problems(args["page"])) or "(none seen)"))
        if isinstance(args.get("portal"), Portal):
            report.sections.append(("portal's server log (tail)", args["portal"].log.read_text()[-6000:]))
    return report
