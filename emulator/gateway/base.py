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
from typing import Protocol

SESSION_ID_PATTERN = "[a-z][a-z0-9]{7}"
NAME_SERVER_PORT = 8053  # the service's name server for session names (UDP), on the platform network
INTERNAL_PORT = 8081  # the gateway's plain-HTTP listener on the platform's and sessions' networks
# Headers of the gateway's question to the service (forward_auth) about a session route:
SESSION_HEADER = "X-Skaha-Emulator-Session"  # the session id the gateway itself routes to
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


class Gateway(Protocol):
    async def load(
        self, api_upstream: str, routes: list[TypeRoute], auth: bool = False, tls_names: list[str] | None = None
    ) -> None:
        """Replace the whole routing table: the API upstream plus these session-type routes, each asking
        the API upstream who may open it when `auth`; HTTPS for `tls_names` when given."""
        ...

    async def is_loaded(self, api_upstream: str, routes: list[TypeRoute], auth: bool = False) -> bool:
        """Whether the gateway runs exactly the table `load` would give it (False after a gateway restart)."""
        ...
