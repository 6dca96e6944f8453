"""What test kit runs leave in Docker, as the suite's own tests see it: only ended runs' and this process's,
never those of a run still going beside it (another pytest worker's, a developer's)."""

from __future__ import annotations

import os

import docker
import psutil

from emulator import labels


def _judged_here(owner: str) -> bool:
    """A run that ended (its process gone, or another one under its pid), or this very process."""
    parts = owner.split(":")
    if len(parts) != 4 or not parts[2].isdigit() or not parts[3].isdigit():
        return True
    pid, started = int(parts[2]), int(parts[3])
    if pid == os.getpid():
        return True
    try:
        return int(psutil.Process(pid).create_time()) != started
    except psutil.NoSuchProcess:
        return True


def kit_leftovers(client: docker.DockerClient, *, running_only: bool = False) -> list[str]:
    """The names of the containers (running ones only, with `running_only`) and networks that kit runs made and
    that are still there, but for runs still going in other processes."""
    found = [
        container.name
        for container in client.containers.list(all=not running_only, filters={"label": labels.KIT_OWNER})
        if _judged_here(container.labels.get(labels.KIT_OWNER, ""))
    ]
    if not running_only:
        found += [
            network.name
            for network in client.networks.list(filters={"label": labels.KIT_OWNER})
            if _judged_here((network.attrs.get("Labels") or {}).get(labels.KIT_OWNER, ""))
        ]
    return found
