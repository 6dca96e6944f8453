"""A container's TCP connections, from the kernel's tables of its network namespace (/proc/net/tcp, tcp6).

Each row: `sl local_address rem_address st ...`, an address as hex (IPv4: one 32-bit word printed in the host's
byte order; IPv6: four such words), a port as hex, the state as hex (01 established, 0A listen). The engine runs
on the service's machine, so that order is this machine's.
"""

from __future__ import annotations

import ipaddress
import socket
import sys

ESTABLISHED = "01"
LISTEN = "0A"


def _address(text: str) -> str:
    """A table's hex address as text; an IPv4-mapped IPv6 one as its IPv4 address."""
    raw = bytes.fromhex(text)
    if sys.byteorder == "little":
        raw = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    if len(raw) == 4:
        return socket.inet_ntop(socket.AF_INET, raw)
    address = ipaddress.IPv6Address(raw)
    return str(address.ipv4_mapped or address)


def _rows(tables: str) -> list[tuple[str, int, str, str]]:
    """(local address, local port, remote address, state) of each row of the tables given one after another."""
    rows = []
    for line in tables.splitlines():
        fields = line.split()
        if len(fields) < 4 or not fields[0].endswith(":"):  # a heading, or not a row
            continue
        try:
            local, local_port = fields[1].split(":")
            remote, _ = fields[2].split(":")
            rows.append((_address(local), int(local_port, 16), _address(remote), fields[3].upper()))
        except ValueError:
            continue
    return rows


def outbound_peers(tables: str) -> set[str]:
    """The addresses the namespace holds established connections to as their client: from a port it does not
    listen on (a connection a listener accepted has the listener's port as its own)."""
    rows = _rows(tables)
    listening = {port for _, port, _, state in rows if state == LISTEN}
    return {remote for _, port, remote, state in rows if state == ESTABLISHED and port not in listening}
