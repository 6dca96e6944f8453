"""schemathesis against the service's own OpenAPI document, through the gateway: whatever a client
sends, no answer is a server error and none carries the engine's words."""

from __future__ import annotations

from collections import Counter

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from emulator.api.app import create_app
from emulator.settings import Settings
from tests.instance import Instance

pytestmark = pytest.mark.slow

# What the engine says (and what a leaked trace looks like); our own messages never contain these.
ENGINE_TEXT = ("Error response from daemon", "No such image", "invalid reference format", "/v1.4", "Traceback")
EXAMPLES_PER_OPERATION = 80


def test_no_generated_request_gets_a_server_error_or_engine_text(fresh: Instance) -> None:
    schema = schemathesis.openapi.from_dict(create_app(Settings(), "unused", "unused").openapi())
    headers = {"Authorization": f"Bearer {fresh.token}"}
    sent: list[int] = []
    for result in schema.get_all_operations():
        operation = result.ok()

        @given(operation.as_strategy())
        @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, suppress_health_check=list(HealthCheck))
        def check(case: schemathesis.Case) -> None:
            response = case.call(base_url=fresh.url, headers=headers, timeout=30)
            sent.append(response.status_code)
            assert response.status_code < 500, (case.method, case.formatted_path, case.body, response.text)
            assert not any(words in response.text for words in ENGINE_TEXT), response.text

        check()
    assert len(sent) >= 1000, len(sent)
    answers = Counter(sent)
    assert answers[200] > 100 and answers[400] > 100, answers  # the requests got past authentication
    assert fresh.session_containers() == []  # nothing generated was a launch that could run
