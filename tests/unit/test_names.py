"""The gateway's name server over real UDP, asked as Go's resolver asks: a rooted single label, A and AAAA."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable

import dns.asyncquery
import dns.exception
import dns.message
import dns.rcode
import dns.rdatatype
import pytest

from emulator.gateway.names import SessionNameServer

SESSIONS = {"emulate-x-notebook-abcd1234": "10.20.0.7"}


async def _table(name: str) -> str | None:
    if name == "emulate-x-broken-abcd1234":
        raise RuntimeError("the engine went away")
    return SESSIONS.get(name)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _with_server(scenario: Callable[[int, list[str]], Awaitable[None]]) -> None:
    async def run() -> None:
        asked: list[str] = []

        async def lookup(name: str) -> str | None:
            asked.append(name)
            return await _table(name)

        server = SessionNameServer(lookup)
        port = _free_port()
        await server.start("127.0.0.1", port)
        try:
            await scenario(port, asked)
        finally:
            server.close()

    asyncio.run(run())


async def _ask(port: int, name: str, rdtype: str = "A") -> dns.message.Message:
    return await dns.asyncquery.udp(dns.message.make_query(name, rdtype), "127.0.0.1", port=port, timeout=2)


def test_a_live_session_name_is_answered_with_its_address_and_nothing_is_cached() -> None:
    async def scenario(port: int, asked: list[str]) -> None:
        reply = await _ask(port, "emulate-x-notebook-abcd1234.")
        assert reply.rcode() == dns.rcode.NOERROR
        [rrset] = reply.answer
        assert [r.address for r in rrset] == ["10.20.0.7"] and rrset.ttl == 0
        six = await _ask(port, "emulate-x-notebook-abcd1234.", "AAAA")  # no IPv6: no data, not "no such name"
        assert six.rcode() == dns.rcode.NOERROR and six.answer == []

    _with_server(scenario)


def test_a_name_that_is_no_live_session_is_no_such_name_at_once() -> None:
    async def scenario(port: int, asked: list[str]) -> None:
        for name in ["emulate-x-notebook-zzzz9999.", "EMULATE-X-NOTEBOOK-ZZZZ9999."]:
            reply = await _ask(port, name)
            assert reply.rcode() == dns.rcode.NXDOMAIN and reply.answer == []
        assert asked == ["emulate-x-notebook-zzzz9999"] * 2  # case folded, as DNS names are

    _with_server(scenario)


@pytest.mark.parametrize(
    "name",
    [
        "emulate-x-notebook-abcd1234.dns.podman.",  # a search domain: the gateway dials rooted names only
        "emulate-x-notebook-abcd1234.other-users-network.",
        "example.org.",
        ".",
    ],
)
def test_any_other_shape_of_name_is_never_looked_up(name: str) -> None:
    async def scenario(port: int, asked: list[str]) -> None:
        reply = await _ask(port, name)
        assert reply.rcode() == dns.rcode.NXDOMAIN and asked == []

    _with_server(scenario)


def test_a_failed_lookup_answers_no_such_name_and_the_server_goes_on() -> None:
    async def scenario(port: int, asked: list[str]) -> None:
        assert (await _ask(port, "emulate-x-broken-abcd1234.")).rcode() == dns.rcode.NXDOMAIN
        assert (await _ask(port, "emulate-x-notebook-abcd1234.")).answer

    _with_server(scenario)


def test_a_datagram_that_is_not_a_query_gets_no_answer_and_the_server_goes_on() -> None:
    async def scenario(port: int, asked: list[str]) -> None:
        loop = asyncio.get_running_loop()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as raw:
            raw.setblocking(False)
            raw.connect(("127.0.0.1", port))
            raw.send(b"\x00\x01not dns at all")
            answer = dns.message.make_response(dns.message.make_query("emulate-x-notebook-abcd1234.", "A"))
            raw.send(answer.to_wire())  # an answer sent to it: never answered (no loops between servers)
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(loop.sock_recv(raw, 512), 0.5)
        assert (await _ask(port, "emulate-x-notebook-abcd1234.")).answer
        assert asked == ["emulate-x-notebook-abcd1234"]

    _with_server(scenario)
