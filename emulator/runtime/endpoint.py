"""Which engine a command talks to, and which socket the service container must mount to reach the same one.

docker-py finds the engine as the Docker CLI does: `DOCKER_HOST`, else the CLI's current context, else
`/var/run/docker.sock`. A rootless engine's socket is none of those, so when nothing names an engine
and the default socket is absent, the user's rootless Podman socket, then rootless Docker's, are tried
(what `podman system service` and `dockerd-rootless.sh` create). Every entry point connects through
`client_from_environment`, so the CLI, the service and the test kit all reach the same engine.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import docker
from docker.context.config import get_current_context_name
from docker.transport.unixconn import UnixHTTPAdapter

from emulator.errors import ConfigError
from emulator.runtime.engine import EngineFacts

DEFAULT_SOCKET = "/var/run/docker.sock"
# Docker Desktop's engine runs in a VM; this path, given as a bind source, is the one Desktop maps to the
# VM's own socket (a socket under the user's home, shared into the VM by file sharing, does not work).
DESKTOP_SOCKET = "/var/run/docker.sock"


def rootless_sockets(environ: Mapping[str, str] = os.environ) -> list[Path]:
    """Where a rootless Podman and a rootless Docker put their API sockets, in the order tried."""
    runtime_dir = Path(environ.get("XDG_RUNTIME_DIR") or f"/run/user/{os.getuid()}")
    return [runtime_dir / "podman" / "podman.sock", runtime_dir / "docker.sock"]


def discovered_url(environ: Mapping[str, str] = os.environ, default_socket: str = DEFAULT_SOCKET) -> str | None:
    """A rootless engine's socket URL, when nothing else names an engine and the default socket is absent;
    None lets docker-py choose as the Docker CLI would (DOCKER_HOST, the context, the default socket)."""
    if environ.get("DOCKER_HOST") or environ.get("DOCKER_CONTEXT") or get_current_context_name() != "default":
        return None
    if Path(default_socket).exists():
        return None
    for candidate in rootless_sockets(environ):
        if candidate.is_socket():
            return f"unix://{candidate}"
    return None


def client_from_environment(timeout: float = 120) -> docker.DockerClient:
    """A client of the engine this user means (not yet pinged)."""
    url = discovered_url()
    if url is not None:
        return docker.DockerClient(base_url=url, timeout=timeout)
    return docker.from_env(timeout=timeout)


def client_socket(client: docker.DockerClient) -> str | None:
    """The host path of the unix socket this client reached its engine through; None for tcp, ssh, npipe.

    docker-py keeps no public record of it (its `base_url` reads `http+docker://localhost` for every unix
    socket): the socket path lives on the transport adapter it mounted for that URL.
    """
    adapter = getattr(client.api, "_custom_adapter", None)
    if isinstance(adapter, UnixHTTPAdapter):
        return str(adapter.socket_path)
    return None


def service_socket(client: docker.DockerClient, facts: EngineFacts) -> str:
    """The bind source that gives the service container the engine this client reached."""
    if facts.desktop:
        return DESKTOP_SOCKET  # whatever the client's own path (a macOS or Windows one), Desktop maps this
    socket = client_socket(client)
    if socket is None:
        raise ConfigError(
            f"`emulate up` needs the engine on a local unix socket to give the service, but this client reaches "
            f"it at {client.api.base_url} (DOCKER_HOST or the Docker context): point DOCKER_HOST at a "
            "unix:// socket of this machine"
        )
    return socket
