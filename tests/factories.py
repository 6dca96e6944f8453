"""One way for tests to make domain objects: a session record with sensible defaults."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from emulator.core.models import Resources, Session, Status
from emulator.profiles import SessionType

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def make_session(**overrides: Any) -> Session:
    """A Pending notebook of alice's with fixed 2 cores / 8 GB; any field may be overridden."""
    values: dict[str, Any] = dict(
        id="k3x9q2ab",
        user="alice",
        type=SessionType.NOTEBOOK,
        name="analysis",
        image="img:1",
        status=Status.PENDING,
        resources=Resources(2, 2, 8, 8, fixed=True),
        start_time=NOW,
        expiry_time=NOW,
    )
    values.update(overrides)
    if isinstance(values["type"], str):
        values["type"] = SessionType(values["type"])
    return Session(**values)
