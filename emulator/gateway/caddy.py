"""The Gateway protocol over Caddy's admin API.

The admin API listens on a unix socket in a folder shared with the service (it is
never on a network a session can reach). `_request` is the only function that
speaks HTTP to Caddy. Session routes are inserted at the head of the route list,
the API route and the final 404 stay at its tail, so a session route never hides
behind the catch-all.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import httpx

from emulator.errors import Unavailable
from emulator.gateway.base import RouteSpec
from emulator.naming import route_id

ADMIN_HOST = "gateway-admin"  # the only Host the admin API accepts (see images/gateway/bootstrap.json)
ADMIN_SOCKET_IN_GATEWAY = "/run/caddy-admin/admin.sock"
SERVER = "gateway"
LISTEN_PORT = 8080
_ROUTES = f"/config/apps/http/servers/{SERVER}/routes"
_SESSION_ROUTE = re.compile(r"^session-([a-z][a-z0-9]{7})$")


def _proxy(dial: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
    handler: dict[str, Any] = {"handler": "reverse_proxy", "upstreams": [{"dial": dial}],
                               "flush_interval": -1}
    if headers:
        handler["headers"] = {"request": {"set": {k: [v] for k, v in headers.items()}}}
    return handler


def session_route(route: RouteSpec) -> dict[str, Any]:
    prefix = route.prefix.rstrip("/")
    forward = {
        "match": [{"path_regexp": {"name": "fwd", "pattern": f"^{re.escape(prefix)}/proxy/([0-9]{{1,5}})(/.*)?$"}}],
        "handle": [
            {"handler": "rewrite", "strip_path_prefix": f"{prefix}/proxy/{{http.regexp.fwd.1}}"},
            _proxy(f"{route.upstream_host}:{{http.regexp.fwd.1}}"),
        ],
    }
    main: list[dict[str, Any]] = []
    if route.strip_prefix:
        main.append({"handler": "rewrite", "strip_path_prefix": prefix})
    main.append(_proxy(f"{route.upstream_host}:{route.port}", route.request_headers))
    return {
        "@id": route_id(route.session_id),
        "match": [{"path": [prefix, f"{prefix}/*"]}],
        "handle": [{"handler": "subroute", "routes": [forward, {"handle": main}]}],
        "terminal": True,
    }


def full_config(api_upstream: str, routes: list[RouteSpec]) -> dict[str, Any]:
    table = [session_route(r) for r in routes]
    table.append({
        "@id": "skaha-api",
        "match": [{"path": ["/skaha", "/skaha/*"]}],
        "handle": [_proxy(api_upstream)],
        "terminal": True,
    })
    table.append({
        "@id": "not-found",
        "handle": [{"handler": "static_response", "status_code": 404,
                    "headers": {"Content-Type": ["text/plain"]},
                    "body": "skaha-emulator: no session or service at {http.request.uri.path}\n"}],
    })
    return {
        "admin": {"listen": f"unix/{ADMIN_SOCKET_IN_GATEWAY}", "origins": [ADMIN_HOST]},
        "apps": {"http": {"servers": {SERVER: {
            "listen": [f":{LISTEN_PORT}"],
            "automatic_https": {"disable": True},
            "max_header_bytes": 1 << 20,
            "routes": table,
        }}}},
    }


class CaddyGateway:
    def __init__(self, admin_socket: Path) -> None:
        self._socket = admin_socket
        self._lock = asyncio.Lock()

    async def _request(self, method: str, path: str, json: Any = None) -> httpx.Response:
        transport = httpx.AsyncHTTPTransport(uds=str(self._socket))
        try:
            async with httpx.AsyncClient(transport=transport, base_url=f"http://{ADMIN_HOST}", timeout=10) as client:
                return await client.request(method, path, json=json)
        except httpx.TransportError as exc:
            raise Unavailable(f"cannot reach the gateway's admin API at {self._socket}: {exc}") from exc

    @staticmethod
    def _check(response: httpx.Response, what: str) -> None:
        if response.status_code >= 400:
            raise Unavailable(f"gateway refused to {what}: {response.status_code} {response.text.strip()}")

    async def wait_ready(self, timeout: float = 30) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            try:
                response = await self._request("GET", "/config/")
                if response.status_code == 200:
                    return
            except Unavailable:
                if loop.time() > deadline:
                    raise
            await asyncio.sleep(0.05)

    async def load(self, api_upstream: str, routes: list[RouteSpec]) -> None:
        async with self._lock:
            self._check(await self._request("POST", "/load", full_config(api_upstream, routes)), "load its config")

    async def add_route(self, route: RouteSpec) -> None:
        async with self._lock:
            await self._request("DELETE", f"/id/{route_id(route.session_id)}")
            self._check(await self._request("PUT", f"{_ROUTES}/0", session_route(route)), "add a route")

    async def delete_route(self, session_id: str) -> None:
        async with self._lock:
            response = await self._request("DELETE", f"/id/{route_id(session_id)}")
            if response.status_code not in (200, 404) and "unknown object ID" not in response.text:
                self._check(response, "delete a route")

    async def route_ids(self) -> list[str]:
        response = await self._request("GET", _ROUTES)
        self._check(response, "list its routes")
        found = []
        for route in response.json() or []:
            match = _SESSION_ROUTE.match(route.get("@id", ""))
            if match:
                found.append(match.group(1))
        return found
