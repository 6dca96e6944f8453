"""A session's address and MAC chosen together, on engines that would give a reused address a new MAC.

Docker derives a container's MAC from its IPv4 address (02:42 and the address's four bytes), so an address
handed to a new session after another's ended still answers at the MAC the gateway's neighbour table holds.
Podman's netavark gives every container a random MAC: a reused address keeps its last container's MAC in
the gateway's table, and the gateway's packets go nowhere for the seconds the kernel takes to find out
(stale, delay, three unicast probes: about 9 s on every launch, once a user's network has cycled through
its addresses). There the runtime picks the address itself and derives the MAC as Docker does.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable


def mac_for(address: str) -> str:
    """Docker's MAC for an IPv4 address: locally administered 02:42, then the address's bytes."""
    packed = ipaddress.IPv4Address(address).packed
    return ":".join(f"{byte:02x}" for byte in (0x02, 0x42, *packed))


def free_address(subnet: str, gateway: str | None, taken: Iterable[str], after: str | None = None) -> str | None:
    """The first address of `subnet` after `after` (wrapping round) that no container holds and is not the
    network's gateway, or None when full.

    Round-robin, as the engines' own allocators go: an address a session just left is the last to be handed
    out again, so the gateway's entry for it has long been refreshed or forgotten by then."""
    network = ipaddress.IPv4Network(subnet, strict=False)
    used = {ipaddress.IPv4Address(a.split("/", 1)[0]) for a in taken if a}
    if gateway:
        used.add(ipaddress.IPv4Address(gateway))
    hosts = list(network.hosts())
    last = ipaddress.IPv4Address(after) if after else None
    start = hosts.index(last) + 1 if last in hosts else 0
    for host in hosts[start:] + hosts[:start]:
        if host not in used:
            return str(host)
    return None
