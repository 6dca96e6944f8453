"""Deterministic, namespaced names for everything the emulator creates."""

from __future__ import annotations

import secrets
import string

PLATFORM_PREFIX = "emulate"  # every instance's containers, networks and volumes: `emulate[-<instance>]-…`
_FIRST = string.ascii_lowercase
_REST = string.ascii_lowercase + string.digits


def new_session_id() -> str:
    """skaha's id shape: 8 characters, the first from [a-z], the rest from [a-z0-9]."""
    return secrets.choice(_FIRST) + "".join(secrets.choice(_REST) for _ in range(7))


def new_app_id() -> str:
    """skaha's desktop-app id: RandomStringGenerator(3)."""
    return secrets.choice(_FIRST) + "".join(secrets.choice(_REST) for _ in range(2))


def app_row_id(desktop_id: str, app_id: str) -> str:
    return f"{desktop_id}-{app_id}"


def service_container(prefix: str) -> str:
    return f"{prefix}-service"


def gateway_container(prefix: str) -> str:
    return f"{prefix}-gateway"


def session_container(prefix: str, session_type: str, session_id: str) -> str:
    # Session ids are unique per instance and never contain '-', so prefix + id cannot collide
    # with the service or gateway names or with another instance's sessions.
    return f"{prefix}-{session_type}-{session_id}"


def user_network(prefix: str, user: str) -> str:
    """A user's own network (user names are [a-z_][a-z0-9_.-]*, all valid in network names)."""
    return f"{prefix}-user-{user}"
