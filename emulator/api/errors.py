"""EmulatorError -> skaha's text/plain answers, in one place."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import PlainTextResponse
from starlette.exceptions import HTTPException

from emulator.errors import EmulatorError, NotAuthenticated

log = logging.getLogger("emulator.api")


def install(app: FastAPI) -> None:
    @app.exception_handler(EmulatorError)
    async def _emulator_error(_: Request, exc: EmulatorError) -> PlainTextResponse:
        if exc.status_code >= 500:
            log.error("%s", exc.message)
        headers = {}
        if isinstance(exc, NotAuthenticated):
            headers["WWW-Authenticate"] = 'Bearer realm="skaha-emulator"'
        return PlainTextResponse(f"{exc.message}\n", status_code=exc.status_code, headers=headers)

    @app.exception_handler(HTTPException)
    async def _http_error(request: Request, exc: HTTPException) -> PlainTextResponse:
        message = exc.detail if exc.status_code != 404 else f"Invalid request: {request.url.path}"
        return PlainTextResponse(f"{message}\n", status_code=exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> PlainTextResponse:
        return PlainTextResponse(f"Invalid request: {request.url.path}\n", status_code=400)
