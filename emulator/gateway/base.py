"""The written contract between the brain and the gateway."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class RouteSpec:
    """One session's routes.

    Requests under `prefix` (which ends in '/') go to `upstream_host:port`, with the
    prefix stripped when `strip_prefix`. Requests under `<prefix>proxy/<port>/` always
    go to that port of the same container with that whole prefix stripped (port forwarding).
    """

    session_id: str
    prefix: str
    upstream_host: str
    port: int
    strip_prefix: bool = False
    request_headers: dict[str, str] = field(default_factory=dict)


class Gateway(Protocol):
    async def load(self, api_upstream: str, routes: list[RouteSpec]) -> None:
        """Replace the whole routing table: the API upstream plus exactly these session routes."""
        ...

    async def add_route(self, route: RouteSpec) -> None:
        """Add (or replace) one session's routes."""
        ...

    async def delete_route(self, session_id: str) -> None:
        """Remove one session's routes; a missing route is fine."""
        ...

    async def route_ids(self) -> list[str]:
        """Session ids that currently have routes."""
        ...
