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


def test_the_published_port_alone_logs_its_requests_to_the_shared_folder_without_headers_or_paths() -> None:
    from pathlib import PurePosixPath

    from emulator.gateway.base import GatewayTable, TypeRoute
    from emulator.gateway.caddy import ACCESS_LOG_IN_GATEWAY, ADMIN_SOCKET_FOLDER_IN_GATEWAY, SERVER, full_config
    from emulator.layout import Layout

    route = TypeRoute("contributed", "/session/contrib/", "/", "emulate-x-contributed-", 5000)
    config = full_config(GatewayTable("svc:8000", [route], auth=True, access_log=True))
    servers = config["apps"]["http"]["servers"]
    assert servers[SERVER]["logs"] == {"default_logger_name": SERVER} and "logs" not in servers["internal"]
    logs = config["logging"]["logs"]
    [logger] = logs["access"]["include"]
    assert logs["default"]["exclude"] == [logger]  # not in the gateway's own output too
    writer = logs["access"]["writer"]
    path = PurePosixPath(writer["filename"])
    assert writer["filename"] == ACCESS_LOG_IN_GATEWAY and str(path.parent) == ADMIN_SOCKET_FOLDER_IN_GATEWAY
    assert path.name == Layout().access_log.name  # the file the service reads, through the shared folder
    assert writer["roll_size_mb"] > 0 and writer["roll_keep"] > 0  # Caddy rolls it
    fields = logs["access"]["encoder"]["fields"]
    # Nothing private (headers, the path and query) and nothing a client sizes (host, method): short, fixed lines.
    for field in ("request>headers", "resp_headers", "request>uri", "request>host", "request>method"):
        assert fields[field] == {"filter": "delete"}, field
    # The testkit's own gateway (no service reads a log there) writes none.
    assert "logging" not in full_config(GatewayTable("svc:8000", [route]))


def test_a_request_names_its_session_in_the_log_only_past_the_routes_checks() -> None:
    from emulator.gateway.base import TypeRoute
    from emulator.gateway.caddy import type_route
    from emulator.session_hosts import SessionHosts

    route = TypeRoute("notebook", "/session/notebook/", "/", "emulate-x-notebook-", 8888)
    for built in (type_route(route, "svc:8000"), type_route(route, "svc:8000", SessionHosts("localhost"), True)):
        [checks] = [h["routes"] for h in built["handle"] if h["handler"] == "subroute"]
        last = checks[-1]["handle"]
        assert last[0] == {
            "handler": "map",
            "source": "{http.regexp.notebook.1}",
            "destinations": ["{http.auth.user.id}"],
            "defaults": ["{http.regexp.notebook.1}"],
        }
        before = _handlers(checks[:-1])
        assert any(h.get("rewrite", {}).get("uri") == "/auth/session" for h in before)  # forward_auth came first
        assert not any(h.get("handler") == "map" for h in before)
