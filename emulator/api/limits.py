"""A cap on request bodies (skaha's requests are a few form fields), enforced before and while reading."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

MAX_BODY_BYTES = 1 << 20
TOO_LARGE = f"request body larger than {MAX_BODY_BYTES} bytes"


class BodyLimit:
    def __init__(self, app: ASGIApp, max_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

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

        async def counted() -> Message:  # a body without Content-Length (chunked) is counted as it comes
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:
                raise HTTPException(status_code=413, detail=TOO_LARGE)
            return message

        await self.app(scope, counted, send)
