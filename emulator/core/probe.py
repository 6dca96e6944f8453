"""Readiness probing through the gateway: notice a session's app answering within one probe interval.

The service shares no network with sessions (in `emulate up`, they cannot reach it), so it asks the gateway, which
routes the probe to the session as it routes users. An answer the gateway made itself (it marks
those with `answered_by_gateway`) means the app is not answering yet.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from emulator.profiles import Probe, Profile

# A probe that waits this long through the gateway counts as an app that accepted the connection (tcp
# readiness). The gateway's own dial time-out must be shorter (gateway/caddy.py), or a dial still hanging
# (a stale neighbour entry, on Podman) would pass for a listening app and Running would come before it answers.
PROBE_READ_TIMEOUT_SECONDS = 2.5


@dataclass(frozen=True)
class GatewayProbes:
    """How the service asks the gateway whether a session answers.

    `base_url`: where the service reaches the gateway; `answered_by_gateway`: the header the gateway puts
    on answers it made itself; `headers_for(session id)`: what lets a probe of that session (and no
    other) past the gateway's check of who is asking."""

    base_url: str
    answered_by_gateway: str
    headers_for: Callable[[str], dict[str, str]]


def probe_path(profile: Profile, values: dict[str, str]) -> str:
    """The path, on the gateway, that a readiness probe of this session asks (`values`: the session's
    template values)."""
    assert profile.readiness is not None and profile.path_prefix is not None
    prefix = profile.render(profile.path_prefix, values)
    if profile.readiness.kind == "tcp":
        return prefix  # any answer from the app under its route means it is listening
    if profile.strip_prefix:  # the probe's path is the app's; the gateway is asked under the prefix
        return prefix.rstrip("/") + profile.render(profile.readiness.path, values)
    return profile.render(profile.readiness.path, values)


def counts_as_ready(probe: Probe, response: httpx.Response | None, answered_by_gateway: str) -> bool:
    """Whether an answer through the gateway means the app is ready. None: the gateway reached the app
    and waits on it (a read timeout): listening (tcp), not yet answering (http)."""
    if response is None:
        return probe.kind == "tcp"
    if response.headers.get(answered_by_gateway):
        return False
    # tcp: the app accepted the connection and answered at all; http: below 500 counts.
    return probe.kind == "tcp" or response.status_code < 500


async def _answers(client: httpx.AsyncClient, probe: Probe, url: str, answered_by_gateway: str) -> bool:
    try:
        response = await client.get(url)
    except httpx.ReadTimeout:
        return counts_as_ready(probe, None, answered_by_gateway)
    except (TimeoutError, OSError, httpx.HTTPError):
        return False
    return counts_as_ready(probe, response, answered_by_gateway)


async def wait_until_ready(
    *,
    url: str,
    probe: Probe,
    answered_by_gateway: str,
    headers: dict[str, str],
    interval: float,
    still_wanted: Callable[[], bool],
    on_slow: Callable[[], None],
    slow_after: float,
    give_up_after: float,
) -> bool:
    """Probe `url` until the app answers (True), the session is no longer wanted or `give_up_after`
    seconds have passed (False).

    Probes every `interval` seconds (a fixed short interval, not exponential backoff:
    the session is usable as soon as it answers); after `slow_after` seconds `on_slow`
    is called once and probing goes on once a second.
    """
    loop = asyncio.get_running_loop()
    started = loop.time()
    warned = False
    # Only ever the platform's own gateway: its internal listener, or the published port (maybe HTTPS).
    timeout = httpx.Timeout(PROBE_READ_TIMEOUT_SECONDS, connect=0.5)
    async with httpx.AsyncClient(timeout=timeout, headers=headers, verify=False) as client:
        while still_wanted():
            if await _answers(client, probe, url, answered_by_gateway):
                return True
            elapsed = loop.time() - started
            if elapsed > give_up_after:
                return False
            if elapsed > slow_after and not warned:
                on_slow()
                warned = True
            await asyncio.sleep(1.0 if warned else interval)
    return False
