"""The Caddy adapter against a stand-in admin socket: waiting for it honours its deadline."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from emulator.errors import Unavailable
from emulator.gateway.caddy import CaddyGateway


async def _answer_500(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.readuntil(b"\r\n\r\n")
    writer.write(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
    await writer.drain()
    writer.close()


def test_wait_ready_gives_up_at_its_deadline_when_the_admin_api_keeps_failing(tmp_path: Path) -> None:
    socket = tmp_path / "admin.sock"

    async def scenario() -> None:
        server = await asyncio.start_unix_server(_answer_500, path=str(socket))
        async with server:
            started = time.monotonic()
            with pytest.raises(Unavailable, match="not ready within 1 s: it answered 500"):
                await CaddyGateway(socket).wait_ready(timeout=1)
            assert time.monotonic() - started < 3

    asyncio.run(scenario())


def test_wait_ready_gives_up_when_nothing_listens(tmp_path: Path) -> None:
    with pytest.raises(Unavailable, match="not ready within 0 s"):
        asyncio.run(CaddyGateway(tmp_path / "absent.sock").wait_ready(timeout=0.3))


def test_a_hung_dial_comes_back_as_the_gateways_502_before_a_probe_would_take_it_for_a_listening_app() -> None:
    """A tcp readiness probe takes a read time-out through the gateway as an app that accepted the connection;
    Caddy's dial time-out must end a dial still hanging (a stale neighbour entry on Podman) before that, so
    its own 502 says "not yet" and Running never comes before the app answers."""
    from emulator.core.probe import PROBE_READ_TIMEOUT_SECONDS
    from emulator.gateway.base import TypeRoute
    from emulator.gateway.caddy import SESSION_DIAL_TIMEOUT_SECONDS, type_route

    assert SESSION_DIAL_TIMEOUT_SECONDS + 1.0 <= PROBE_READ_TIMEOUT_SECONDS  # a second's margin on a busy machine
    route = type_route(TypeRoute("contributed", "/session/contrib/", "/", "emulate-x-contributed-", 5000))
    proxies = [h for h in _handlers(route) if h.get("handler") == "reverse_proxy"]
    assert proxies and all(p["transport"]["dial_timeout"] == f"{SESSION_DIAL_TIMEOUT_SECONDS:g}s" for p in proxies)


def test_session_routes_dial_rooted_names_through_the_name_server() -> None:
    from emulator.gateway.base import TypeRoute
    from emulator.gateway.caddy import type_route

    route = type_route(
        TypeRoute("notebook", "/session/notebook/", "/", "emulate-x-notebook-", 8888, name_server="172.30.0.2:8053")
    )
    proxies = [h for h in _handlers(route) if h.get("handler") == "reverse_proxy"]
    assert len(proxies) == 2  # the app and its port forwarding
    for proxy in proxies:
        assert proxy["transport"]["resolver"] == {"addresses": ["udp/172.30.0.2:8053"]}
        [upstream] = proxy["upstreams"]
        assert upstream["dial"].startswith("emulate-x-notebook-{http.regexp.notebook.1}.:")


def _handlers(node: object) -> list[dict[str, Any]]:
    """Every handler in a piece of Caddy's JSON, however deep its subroutes."""
    found: list[dict[str, Any]] = []
    if isinstance(node, dict):
        if "handler" in node:
            found.append(node)
        for value in node.values():
            found += _handlers(value)
    elif isinstance(node, list):
        for item in node:
            found += _handlers(item)
    return found
