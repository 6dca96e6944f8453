"""schemathesis against the service's own OpenAPI document, through the gateway: whatever a client
sends, no answer is a server error and none carries the engine's words."""

from __future__ import annotations

import re
from collections import Counter
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.core.errors import InvalidSchema
from schemathesis.core.result import Err, Result

from emulator.api.app import create_app
from emulator.gateway.base import VISIT_PATH
from emulator.settings import Settings
from tests.instance import Instance, Person

pytestmark = pytest.mark.slow

Operation = schemathesis.APIOperation[Any, Any, Any, Any]

# What the engine says (and what a leaked trace looks like); our own messages never contain these.
ENGINE_TEXT = ("Error response from daemon", "No such image", "invalid reference format", "/v1.4", "Traceback")
EXAMPLES_PER_OPERATION = 80


def _valid(result: Result[Operation, InvalidSchema]) -> Operation:
    """An operation of the document, or the document's own error (the test's document must be valid)."""
    if isinstance(result, Err):
        raise result.err()
    return result.ok()


def test_no_generated_request_gets_a_server_error_or_engine_text(fresh: Instance) -> None:
    schema = schemathesis.openapi.from_dict(create_app(Settings(), "unused", "unused").openapi())
    headers = {"Authorization": f"Bearer {fresh.token}"}
    sent: list[int] = []
    for result in schema.get_all_operations():
        operation = _valid(result)

        @given(operation.as_strategy())
        @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, suppress_health_check=list(HealthCheck))
        def check(case: schemathesis.Case[Any]) -> None:
            response = case.call(base_url=fresh.url, headers=headers, timeout=30)
            sent.append(response.status_code)
            assert response.status_code < 500, (case.method, case.formatted_path, case.body, response.text)
            assert not any(words in response.text for words in ENGINE_TEXT), response.text

        check()
    assert len(sent) >= 1000, len(sent)
    answers = Counter(sent)
    assert answers[200] > 100 and answers[400] > 100, answers  # the requests got past authentication
    assert fresh.session_containers() == []  # nothing generated was a launch that could run


def _get(*names: str) -> dict[str, Any]:
    parameters = [{"name": n, "in": "query", "schema": {"type": "string"}} for n in names]
    return {"get": {"parameters": parameters, "responses": {"default": {"description": "any"}}}}


# The routes that admit a browser to a session's own host, which the service's OpenAPI document leaves out
# (they are the portal's and the gateway's, not skaha's API).
SESSION_HOST_ROUTES = {
    "openapi": "3.0.2",
    "info": {"title": "sign-in to sessions' own hosts", "version": "1"},
    "paths": {
        "/science-portal/visit": _get("session", "next"),
        VISIT_PATH: _get("ticket", "next"),
    },
}


def test_nothing_sent_to_the_session_host_sign_in_gets_a_server_error(
    secured: Instance, people: dict[str, Person]
) -> None:
    """The portal's visit tickets and a session host's step that turns them into a cookie: generated queries,
    signed in and not, on the portal's host and on a session's."""
    schema = schemathesis.openapi.from_dict(SESSION_HOST_ROUTES)
    signed = httpx.Client(base_url=secured.url, timeout=30)
    signed.post("/science-portal/login", data={"username": "eve", "password": people["eve"].password})
    portal = urlsplit(secured.url).netloc
    port = urlsplit(secured.url).port
    session_host = {"Host": f"abcdefgh.localhost:{port}"}
    session_hosts = re.compile(rf"[a-z][a-z0-9]{{7}}\.localhost:{port}")
    sent: list[int] = []
    for result in schema.get_all_operations():
        operation = _valid(result)

        @given(operation.as_strategy())
        @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
        def check(case: schemathesis.Case[Any]) -> None:
            headers = session_host if case.path == VISIT_PATH else {}
            for cookies in ({}, dict(signed.cookies)):
                response = case.call(base_url=secured.url, headers=headers, cookies=cookies, timeout=30)
                sent.append(response.status_code)
                assert response.status_code < 500, (case.method, case.formatted_path, case.query, response.text)
                for location in response.headers.get("location", []):  # schemathesis lists each header's values
                    where = urlsplit(location)  # never off this platform
                    assert where.netloc in ("", portal) or session_hosts.fullmatch(where.netloc), where

        check()
    assert len(sent) >= 100, len(sent)
