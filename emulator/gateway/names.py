"""The gateway's name server: a session container's name answered with its address on its owner's network,
from the platform's own records, and nothing else.

The gateway routes `/session/<type>/<id>/` to the container `<prefix>-<type>-<id>` by name. Left to the
engine's DNS, that name was answered by whichever of the gateway's networks answered first: a session
whose *hostname* (its name, chosen by its user) spelled another user's container name could be given that
user's traffic. And Podman's aardvark-dns drops queries while it reloads for a container just started,
so a launch waited a resolver time-out (1 s there) on most launches. The gateway therefore resolves session
names here only (Caddy's `resolver` on the session routes): an answer is the address the engine gave that
very container on its owner's network, a name that is not a live session of this instance gets NXDOMAIN
at once, and no other name is answered. The gateway's other names (the service) still go to the engine.

The answers carry TTL 0 and the gateway's resolver keeps none: a deleted session's name stops answering
with the row that ends it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import cast

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

log = logging.getLogger(__name__)

Lookup = Callable[[str], Awaitable[str | None]]


def parse(wire: bytes) -> dns.message.Message | None:
    """The query in a datagram; None for one that is not a DNS query (nothing is sent back to it)."""
    try:
        query = dns.message.from_wire(wire)
    except dns.exception.DNSException:
        return None
    return None if query.flags & dns.flags.QR else query  # never answer an answer


def asked(query: dns.message.Message) -> str | None:
    """The container name a well-formed query asks the address of, or None."""
    if query.opcode() != dns.opcode.QUERY or len(query.question) != 1:
        return None
    question = query.question[0]
    return session_label(question.name) if question.rdclass == dns.rdataclass.IN else None


def answer(query: dns.message.Message, address: str | None) -> bytes:
    """The answer to `query`, given the address of the name it asks (None: no such name)."""
    response = dns.message.make_response(query, recursion_available=False)
    response.flags |= dns.flags.AA
    if query.opcode() != dns.opcode.QUERY:
        response.set_rcode(dns.rcode.NOTIMP)
        return response.to_wire()
    if len(query.question) != 1:
        response.set_rcode(dns.rcode.FORMERR)
        return response.to_wire()
    question = query.question[0]
    if address is None or asked(query) is None:
        response.set_rcode(dns.rcode.NXDOMAIN)
    elif question.rdtype in (dns.rdatatype.A, dns.rdatatype.ANY):
        response.answer.append(dns.rrset.from_text(question.name, 0, dns.rdataclass.IN, dns.rdatatype.A, address))
    # Any other type of a name that exists (AAAA: sessions have no IPv6 address): no data, no error.
    return response.to_wire()


def session_label(name: dns.name.Name) -> str | None:
    """The container name asked for: a single label, rooted (the gateway dials `<name>.:port`, so no search
    domain is ever appended); None for any other shape."""
    if len(name.labels) != 2 or name.labels[1] != b"":
        return None
    try:
        return name.labels[0].decode("ascii").lower()
    except UnicodeDecodeError:
        return None


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, lookup: Lookup) -> None:
        self._lookup = lookup
        self._transport: asyncio.DatagramTransport | None = None
        self._pending: set[asyncio.Task[None]] = set()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        task = asyncio.get_running_loop().create_task(self._reply(data, addr))
        self._pending.add(task)  # a task nobody holds may be collected before it runs
        task.add_done_callback(self._pending.discard)

    async def _reply(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        query = parse(data)
        if query is None:
            return
        name = asked(query)
        address = None
        if name is not None:
            try:
                address = await self._lookup(name)
            except Exception:  # one failed lookup answers NXDOMAIN; the server goes on answering
                log.exception("looking up %s failed", name)
        if self._transport is not None:
            self._transport.sendto(answer(query, address), addr)

    def error_received(self, exc: Exception) -> None:  # e.g. the gateway went away before our answer
        log.debug("name server: %s", exc)


class SessionNameServer:
    """UDP DNS on `host:port`, answering with `lookup(container_name)`."""

    def __init__(self, lookup: Lookup) -> None:
        self._lookup = lookup
        self._transport: asyncio.DatagramTransport | None = None

    async def start(self, host: str, port: int) -> None:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(lambda: _Protocol(self._lookup), local_addr=(host, port))
        self._transport = transport

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None
