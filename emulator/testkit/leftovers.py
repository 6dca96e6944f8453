"""What the kit leaves in Docker is labelled with the run that made it, so it can be found and removed
without testcontainers' reaper (a container image an offline machine does not have): at the end of the
run, and, for a run that crashed, at the start of the next one."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import tempfile
from pathlib import Path

import docker
import docker.errors
import psutil

from emulator import labels

KEPT = "kept"
STATE_PREFIX = "skaha-testkit-"


def owner() -> str:
    me = psutil.Process()
    return f"{socket.gethostname()}:{os.getuid()}:{me.pid}:{int(me.create_time())}"


def _mine(owner_label: str) -> bool:
    """Made by a run of this user on this machine (root may clean up after anyone here)."""
    parts = owner_label.split(":")
    if len(parts) != 4 or parts[0] != socket.gethostname():
        return False
    return os.getuid() == 0 or parts[1] == str(os.getuid())


def alive(owner_label: str) -> bool:
    """Whether the run that made something still runs (one of another machine's cannot be judged here: yes)."""
    parts = owner_label.split(":")
    if len(parts) != 4 or parts[0] != socket.gethostname():
        return True
    _, _, pid, started = parts
    if not pid.isdigit() or not started.isdigit():
        return True
    try:
        return int(psutil.Process(int(pid)).create_time()) == int(started)
    except psutil.NoSuchProcess:
        return False


def _kept(state: str) -> bool:
    return bool(state) and (Path(state) / KEPT).exists()


def remove_state(state: str) -> None:
    """A run's state folder, only where the kit makes them (a label is never trusted with another path)."""
    path = Path(state)
    if path.parent == Path(tempfile.gettempdir()) and path.name.startswith(STATE_PREFIX):
        shutil.rmtree(path, ignore_errors=True)


def sweep(client: docker.DockerClient, *, include_kept: bool = False, only_owner: str | None = None) -> list[str]:
    """Remove the containers and networks of this user's runs that have ended (or, with `only_owner`, of that
    run); kept sessions stay unless `include_kept`. Returns the names removed."""
    removed: list[str] = []
    states: set[str] = set()

    def wanted(found: dict[str, str]) -> bool:
        mark = found.get(labels.KIT_OWNER, "")
        if only_owner is not None:
            return mark == only_owner
        # Another user's runs, or another machine's on a shared engine, are not ours to judge.
        return _mine(mark) and not alive(mark) and (include_kept or not _kept(found.get(labels.KIT_STATE, "")))

    for container in client.containers.list(all=True, filters={"label": labels.KIT_OWNER}):
        if wanted(container.labels):
            with contextlib.suppress(docker.errors.NotFound):
                container.remove(force=True, v=True)
            removed.append(container.name)
            states.add(container.labels.get(labels.KIT_STATE, ""))
    for network in client.networks.list(filters={"label": labels.KIT_OWNER}):
        if wanted(network.attrs.get("Labels") or {}):
            with contextlib.suppress(docker.errors.NotFound):
                network.remove()
            removed.append(network.name)
            states.add((network.attrs.get("Labels") or {}).get(labels.KIT_STATE, ""))
    for state in states - {""}:
        remove_state(state)
    return removed
