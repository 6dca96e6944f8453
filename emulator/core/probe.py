"""Readiness probing: notice a session's app answering within one probe interval."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx

from emulator.profiles import Probe


async def _answers(client: httpx.AsyncClient, probe: Probe, address: str, port: int, path: str) -> bool:
    try:
        if probe.kind == "tcp":
            _, writer = await asyncio.wait_for(asyncio.open_connection(address, port), timeout=1)
            writer.close()
            return True
        response = await client.get(f"http://{address}:{port}{path}")
        return response.status_code < 500
    except (TimeoutError, OSError, httpx.HTTPError):
        return False


async def wait_until_ready(
    *,
    address: str,
    port: int,
    probe: Probe,
    path: str,
    interval: float,
    still_wanted: Callable[[], bool],
    on_slow: Callable[[], None],
    slow_after: float,
) -> bool:
    """Probe until the app answers (True) or the session is no longer wanted (False).

    Probes every `interval` seconds (a fixed short interval, not exponential backoff:
    the session is usable as soon as it answers); after `slow_after` seconds `on_slow`
    is called once and probing goes on once a second.
    """
    loop = asyncio.get_running_loop()
    started = loop.time()
    warned = False
    async with httpx.AsyncClient(timeout=httpx.Timeout(2.0, connect=0.5)) as client:
        while still_wanted():
            if await _answers(client, probe, address, port, path):
                return True
            elapsed = loop.time() - started
            if elapsed > slow_after and not warned:
                on_slow()
                warned = True
            await asyncio.sleep(1.0 if warned else interval)
    return False
