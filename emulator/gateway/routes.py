"""The gateway's table, derived from the profiles: one route per path prefix of each interactive type."""

from __future__ import annotations

from collections.abc import Iterable

from emulator import naming
from emulator.gateway.base import TypeRoute
from emulator.profiles import Profile


def routes_for(
    profiles: Iterable[Profile], prefix: str, base_url: str, name_server: str | None = None
) -> list[TypeRoute]:
    """`prefix` names the instance's containers; `base_url`'s scheme is what X-Forwarded-Proto says;
    `name_server` ("host:port") resolves the containers' names."""
    routes = []
    scheme = base_url.split("://", 1)[0]
    for profile in profiles:
        if not profile.interactive or profile.port is None or profile.path_prefix is None:
            continue
        headers = {k: v.format(forwarded_proto=scheme) for k, v in profile.request_headers.items()}
        container_prefix = naming.session_container(prefix, profile.type, "")
        prefixes = [(profile.path_prefix, profile.port, profile.strip_prefix)]
        prefixes += [(r.path_prefix, r.port, r.strip_prefix) for r in profile.extra_routes]
        for index, (path_prefix, port, strip) in enumerate(prefixes):
            before, _, after = path_prefix.partition("{session_id}")
            routes.append(
                TypeRoute(
                    session_type=profile.type if index == 0 else f"{profile.type}-{index}",
                    path_before=before,
                    path_after=after,
                    container_prefix=container_prefix,
                    port=port,
                    strip_prefix=strip,
                    request_headers=headers,
                    name_server=name_server,
                )
            )
    return sorted(routes, key=lambda r: r.session_type)
