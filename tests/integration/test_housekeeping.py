"""Housekeeping hears the engine: a session's container that goes away is seen at once, not at the next
timed pass (this instance's passes are ten minutes apart)."""

from __future__ import annotations

import time
from pathlib import Path

import docker
import pytest

from tests.instance import start_instance, stop_instance

pytestmark = pytest.mark.slow


def test_a_container_removed_behind_the_platforms_back_is_seen_at_once(
    tmp_path: Path, docker_client: docker.DockerClient
) -> None:
    instance = start_instance(tmp_path, "pytest-events", docker_client, settings={"EMULATE_LOOP_INTERVAL": "600"})
    try:
        session_id = instance.job("watched", cmd="sleep", args="600")
        instance.wait_status(session_id, "Running")
        instance.container(session_id).remove(force=True)
        removed = time.monotonic()
        instance.wait_status(session_id, "Failed", timeout=15)
        assert time.monotonic() - removed < 10
        events = instance.http.get(f"/session/{session_id}", params={"view": "events"}).text
        assert "disappeared" in events or "exited" in events, events
    finally:
        stop_instance(instance, docker_client)
