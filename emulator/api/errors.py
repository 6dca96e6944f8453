"""EmulatorError -> skaha's text/plain answers, in one place."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import PlainTextResponse
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from emulator.core.disk import disk_full_words, is_disk_full
from emulator.errors import DiskFull, EmulatorError, NotAuthenticated

log = logging.getLogger(__name__)

UNAVAILABLE = "the emulator cannot reach its container engine or gateway right now; try again shortly"
INTERNAL = "the emulator failed to do that; its log says why"


def install(app: FastAPI) -> None:
    @app.exception_handler(EmulatorError)
    async def _emulator_error(request: Request, exc: EmulatorError) -> PlainTextResponse:
        message = exc.message
        if exc.status_code >= 500 and not isinstance(exc, DiskFull):
            # The detail (often the engine's own words) goes to the log, never to the caller.
            log.error("%s %s: %s", request.method, request.url.path, exc.message)
            message = UNAVAILABLE if exc.status_code == 503 else INTERNAL
        headers = {}
        if isinstance(exc, NotAuthenticated):
            headers["WWW-Authenticate"] = 'Bearer realm="skaha-emulator"'
        return PlainTextResponse(f"{message}\n", status_code=exc.status_code, headers=headers)

    @app.exception_handler(HTTPException)
    async def _http_error(request: Request, exc: HTTPException) -> PlainTextResponse:
        message = exc.detail if exc.status_code != 404 else f"Invalid request: {request.url.path}"
        return PlainTextResponse(f"{message}\n", status_code=exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> PlainTextResponse:
        return PlainTextResponse(f"Invalid request: {request.url.path}\n", status_code=400)


class ContainUnforeseen:
    """An exception no handler foresaw becomes a logged 500 here. Left to Starlette's outermost handler it
    is answered and then raised again, and uvicorn closes the connection: the gateway keeps its connections
    to the service open across clients, and the next request it sent on that one (someone else's POST,
    which it does not retry) failed with a 502."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watched(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, watched)
        except Exception as exc:
            log.exception("%s %s failed", scope.get("method"), scope.get("path"))
            if started:
                raise  # half an answer is out: closing the connection is all that is left
            if is_disk_full(exc):  # the one unforeseen failure the caller can act on: said as it is
                answer = PlainTextResponse(f"{disk_full_words('the platform could not write')}\n", status_code=507)
            else:
                answer = PlainTextResponse(f"{INTERNAL}\n", status_code=500)
            await answer(scope, receive, send)
