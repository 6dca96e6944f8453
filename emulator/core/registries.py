"""Which registries a launch may make the engine pull from.

A pull makes the engine connect to whatever host and port an image reference names, and a launch's
events say how that went: on a shared server, any user could have the engine probe the host's loopback
and its LAN as a port scanner. So with sign-in on, a registry at a loopback, link-local or private
address (by name or by number) is refused unless the operator lists it in EMULATE_REGISTRIES; with that
list set, only its registries are pulled from, anywhere. A single-user laptop pulls from anywhere.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket

from docker_image.reference import Reference

from emulator.errors import InvalidRequest


def registry_of(reference: str) -> str:
    """The registry an image reference names (host or host:port; docker.io when it names none)."""
    host, _ = Reference.parse_normalized_named(reference).split_hostname()
    return str(host)


def _host(registry: str) -> str:
    if registry.startswith("["):  # [v6]:port
        return registry[1 : registry.index("]")]
    return registry.rsplit(":", 1)[0] if registry.count(":") == 1 else registry


def _inward(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    return not ip.is_global or ip.is_multicast


class RegistryPolicy:
    def __init__(self, allowed: list[str] | None, public_only: bool) -> None:
        self._allowed = {a.lower() for a in allowed} if allowed is not None else None
        self._public_only = public_only

    async def check(self, reference: str) -> None:
        """InvalidRequest when this launch may not pull `reference` here."""
        registry = registry_of(reference).lower()
        if self._allowed is not None:
            if registry not in self._allowed and _host(registry) not in self._allowed:
                listed = ", ".join(sorted(self._allowed)) or "none"
                raise InvalidRequest(
                    f"images from {registry} are not pulled here: the registries allowed are {listed} "
                    "(EMULATE_REGISTRIES)"
                )
            return
        if not self._public_only:
            return
        host = _host(registry)
        try:
            found = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
        except OSError:
            return  # the engine cannot resolve it either: the pull fails with "cannot be reached"
        if any(_inward(str(entry[4][0])) for entry in found):
            raise InvalidRequest(
                f"images from {registry} are not pulled on this shared server: it is at a loopback, link-local or "
                "private address (the operator can allow it in EMULATE_REGISTRIES)"
            )
