"""The Caddy adapter against a stand-in admin socket: waiting for it honours its deadline."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

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
