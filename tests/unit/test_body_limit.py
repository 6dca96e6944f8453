"""The API's bodies: capped in size, and in the time they take to arrive (a trickled body is a 408)."""

from __future__ import annotations

import asyncio

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.types import Message

from emulator.api.limits import BodyLimit


async def _echo(request: Request) -> PlainTextResponse:
    return PlainTextResponse(f"{len(await request.body())} bytes")


def _call(chunks: list[bytes], pause: float, max_seconds: float = 0.3, ends: bool = True) -> tuple[int, bytes]:
    app = BodyLimit(Starlette(routes=[Route("/", _echo, methods=["POST"])]), max_seconds=max_seconds)
    sent: list[Message] = []
    pending = list(chunks)

    async def receive() -> Message:
        if not pending:
            await asyncio.sleep(3600)  # the client sends nothing more
        await asyncio.sleep(pause)
        body = pending.pop(0)
        return {"type": "http.request", "body": body, "more_body": bool(pending) or not ends}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/", "headers": [], "query_string": b"", "asgi": {}}
    asyncio.run(asyncio.wait_for(app(scope, receive, send), 5))
    return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])


def test_a_body_that_arrives_in_time_is_read() -> None:
    assert _call([b"a" * 10, b"b" * 10], pause=0.05) == (200, b"20 bytes")


def test_a_trickled_body_is_refused_once_its_time_is_up() -> None:
    status, body = _call([b"a" * 10, b"b" * 10, b"c" * 10, b"d"], pause=0.15)
    assert status == 408 and b"did not arrive within 0.3 s" in body


def test_a_body_whose_rest_never_comes_is_refused() -> None:
    assert _call([b"a" * 10], pause=0.0, ends=False)[0] == 408
