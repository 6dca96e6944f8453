"""The engines' own recorded answers, and a Docker SDK client that gives them (no engine needed).

`engine_answers/*.json` are the `/version` and `/info` answers of the engines on the project's test machine
(Debian 12, cgroup v1), recorded as they answered: Docker 20.10 rootful, Docker 20.10 rootless (cgroup driver
none), Podman 4.3 rootful and rootless. A test that needs what this machine lacks (SELinux, a CDI-capable
engine, a GPU) changes the one field such a machine changes, and says so where it does.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import docker.errors
import requests

from emulator.runtime.engine import EngineFacts, engine_facts_from

ANSWERS = Path(__file__).parent / "engine_answers"
DOCKER, DOCKER_ROOTLESS = "docker-20.10-rootful", "docker-20.10-rootless"
PODMAN, PODMAN_ROOTLESS = "podman-4.3-rootful", "podman-4.3-rootless"


def answers(name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    recorded = json.loads((ANSWERS / f"{name}.json").read_text())
    return recorded["version"], recorded["info"]


def facts(name: str, **info_changes: Any) -> EngineFacts:
    version, info = answers(name)
    return engine_facts_from(version, {**info, **info_changes})


class StubClient:
    """A docker SDK client's `version`/`info` (recorded answers) and the calls a test wants to see: a test
    sets the parts of the SDK client it stands in for (`api`, `containers`, `networks`) to stubs of its own."""

    api: Any
    containers: Any
    networks: Any

    def __init__(self, name: str, version_changes: dict[str, Any] | None = None, **info_changes: Any) -> None:
        self._version, self._info = answers(name)
        self._version = {**self._version, **(version_changes or {})}
        self._info = {**self._info, **info_changes}

    def version(self) -> dict[str, Any]:
        return self._version

    def info(self) -> dict[str, Any]:
        return self._info


def api_error(status: int, explanation: str) -> docker.errors.APIError:
    response = requests.Response()
    response.status_code = status
    return docker.errors.APIError(f"{status} Server Error", response=response, explanation=explanation)
