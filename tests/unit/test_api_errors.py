"""An unforeseen exception is answered 500 and goes no further: the connection it came on stays usable."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from emulator.api import errors


def _app() -> FastAPI:
    app = FastAPI()
    errors.install(app)
    app.add_middleware(errors.ContainUnforeseen)

    @app.post("/boom")
    async def boom() -> None:
        raise KeyError("nobody foresaw this")

    @app.get("/fine")
    async def fine() -> str:
        return "fine"

    return app


def test_an_unforeseen_error_is_a_500_in_words_and_never_raised_to_the_server(caplog: pytest.LogCaptureFixture) -> None:
    # raise_server_exceptions: anything raised past our middleware would fail the request here, as it
    # reaches uvicorn (which then closes the connection) in the service.
    with TestClient(_app(), raise_server_exceptions=True) as client:
        answer = client.post("/boom")
        assert answer.status_code == 500
        assert answer.text == f"{errors.INTERNAL}\n" and "nobody foresaw" not in answer.text
        assert client.get("/fine").status_code == 200
    assert "nobody foresaw this" in caplog.text  # the detail is in the log


def test_without_it_starlette_raises_the_error_on_to_the_server() -> None:
    app = FastAPI()

    @app.post("/boom")
    async def boom() -> None:
        raise KeyError("nobody foresaw this")

    with TestClient(app, raise_server_exceptions=True) as client, pytest.raises(KeyError):
        client.post("/boom")
