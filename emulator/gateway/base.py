"""The written contract between the brain and the gateway.

The gateway holds one route per session *type*, not per session: a request for
`/session/<type>/<id>/...` is sent to the container named `<prefix>-<type>-<id>`,
whose address on its owner's network the service's name server gives (gateway/names.py;
the engine's DNS is never asked a session's name). Launching or deleting a session
therefore never changes the gateway's configuration. (Caddy applies every admin-API
change by reloading its whole configuration, which breaks requests in flight for
every user; see README, "Routing".)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from emulator.session_hosts import SessionHosts

SESSION_ID_PATTERN = "[a-z][a-z0-9]{7}"
NAME_SERVER_PORT = 8053  # the service's name server for session names (UDP), on the platform network
INTERNAL_PORT = 8081  # the gateway's plain-HTTP listener on the platform's and sessions' networks
# Headers of the gateway's question to the service (forward_auth) about a session route:
SESSION_HEADER = "X-Skaha-Emulator-Session"  # the session id the gateway itself routes to
# Set by the gateway (never passed on from a client) on requests it sends the service from a session's own
# host: the session that host serves ("" on the portal's host).
SESSION_HOST_HEADER = "X-Skaha-Emulator-Session-Host"
VISIT_PATH = "/_skaha-emulator/visit"  # on a session's host: where the portal's sign-in ticket becomes a cookie
# The platform's cookies (core/signin.py issues them; the gateway finds and strips them by these names)
COOKIE_PREFIX = "skaha_emulator_"
PORTAL_COOKIE = f"{COOKIE_PREFIX}session"  # the portal's sign-in
VISIT_COOKIE = f"{COOKIE_PREFIX}visit"  # a session host's own
PROBE_HEADER = "X-Skaha-Emulator-Probe"  # the service's readiness probes (never passed on to a session)


@dataclass(frozen=True)
class TypeRoute:
    """How requests for one session type reach their containers.

    `path_before` and `path_after` surround the session id in the path prefix
    (for `/session/notebook/{session_id}/`: `/session/notebook/` and `/`).
    Requests under the prefix go to `<container_prefix><id>:<port>`, with the prefix
    stripped when `strip_prefix`; requests under `<prefix>proxy/<port>/` go to that
    port of the same container with that whole prefix stripped (port forwarding).
    """

    session_type: str
    path_before: str
    path_after: str
    container_prefix: str
    port: int
    strip_prefix: bool = False
    request_headers: dict[str, str] = field(default_factory=dict)
    name_server: str | None = None  # "host:port" (UDP) that resolves the containers' names; None: the system's


@dataclass(frozen=True)
class GatewayTable:
    """What the gateway must run: the API's upstream and one route per session-type prefix."""

    api_upstream: str
    routes: list[TypeRoute]
    auth: bool = False  # session routes ask the service who may open them
    tls_names: list[str] | None = None  # HTTPS on the published port, for these names
    session_hosts: SessionHosts | None = None  # None: sessions are served on the portal's host (no split)
    access_log: bool = False  # the published port's requests are logged, for sessions' last activity


@dataclass(frozen=True)
class Visit:
    """A request the gateway passed on to a session, past its checks, as its access log has it."""

    session_id: str
    when: datetime  # when the gateway answered it (a WebSocket: when it closed)
    status: int


class AccessLog(Protocol):
    def read(self) -> list[Visit]:
        """The visits logged since the last call (at the first, those the log still holds); blocking file reads."""
        ...


class Gateway(Protocol):
    async def load(self, table: GatewayTable) -> None:
        """Replace the whole routing table with `table`."""
        ...

    async def is_loaded(self, table: GatewayTable) -> bool:
        """Whether the gateway runs exactly the table `load` would give it (False after a gateway restart)."""
        ...
