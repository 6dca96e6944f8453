"""What test kit runs leave in Docker, as the suite's own tests see it: only the runs a test started itself,
never those of a run going beside it (another pytest worker's, a developer's) nor an unrelated crashed one."""

from __future__ import annotations

import os

import docker

from emulator import labels


def kit_leftovers(client: docker.DockerClient) -> list[str]:
    """Every container and network this test's kit runs made that is still there: the test gives its runs a
    TMPDIR of its own (which their subprocesses inherit), and their state folders, named in what they make,
    are under it; so the runs of others testing on this engine at the same time are not counted."""
    runs = os.environ["TMPDIR"]

    def mine(found: dict[str, str]) -> bool:
        return found.get(labels.KIT_STATE, "").startswith(f"{runs}/")

    containers = [
        c.name for c in client.containers.list(all=True, filters={"label": labels.KIT_OWNER}) if mine(c.labels)
    ]
    networks = [
        n.name for n in client.networks.list(filters={"label": labels.KIT_OWNER}) if mine(n.attrs.get("Labels") or {})
    ]
    return containers + networks
