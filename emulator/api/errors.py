"""EmulatorError -> skaha's text/plain answers, in one place."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import PlainTextResponse
from starlette.exceptions import HTTPException

from emulator.errors import EmulatorError, NotAuthenticated

log = logging.getLogger("emulator.api")

UNAVAILABLE = "the emulator cannot reach its container engine or gateway right now; try again shortly"
INTERNAL = "the emulator failed to do that; its log says why"


def install(app: FastAPI) -> None:
    @app.exception_handler(EmulatorError)
    async def _emulator_error(request: Request, exc: EmulatorError) -> PlainTextResponse:
        message = exc.message
        if exc.status_code >= 500:
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
