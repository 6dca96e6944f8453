"""A cap on request bodies (skaha's requests are a few form fields), enforced before and while reading, and a
time limit on reading them: a client that trickles a body in (to hold the service's connections, as two
hundred slow clients once held the gateway's) gets a 408 once BODY_SECONDS have passed since the first read.
Session routes never pass through here: an upload to a session may take as long as it takes."""

from __future__ import annotations

import asyncio

from starlette.exceptions import HTTPException
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

MAX_BODY_BYTES = 1 << 20
TOO_LARGE = f"request body larger than {MAX_BODY_BYTES} bytes"
BODY_SECONDS = 20.0  # a megabyte at 50 kB/s


class BodyLimit:
    def __init__(self, app: ASGIApp, max_bytes: int = MAX_BODY_BYTES, max_seconds: float = BODY_SECONDS) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.max_seconds = max_seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and not declared.isdigit():
            await PlainTextResponse("invalid Content-Length\n", status_code=400)(scope, receive, send)
            return
        if declared is not None and int(declared) > self.max_bytes:
            await PlainTextResponse(f"{TOO_LARGE}\n", status_code=413)(scope, receive, send)
            return
        seen = 0
        deadline: float | None = None
        body_done = False

        async def counted() -> Message:  # a body without Content-Length (chunked) is counted as it comes
            nonlocal seen, deadline, body_done
            if body_done:  # after the body, receive() waits for the client to go (a streamed answer): untimed
                return await receive()
            loop = asyncio.get_running_loop()
            deadline = deadline or loop.time() + self.max_seconds
            try:
                message = await asyncio.wait_for(receive(), max(0.0, deadline - loop.time()))
            except TimeoutError:
                raise HTTPException(
                    status_code=408, detail=f"the request body did not arrive within {self.max_seconds:g} s"
                ) from None
            body_done = message["type"] != "http.request" or not message.get("more_body", False)
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:
                raise HTTPException(status_code=413, detail=TOO_LARGE)
            return message

        await self.app(scope, counted, send)
