"""One lock per session, which orders its bring-up against its removal: a delete during a launch waits for
the container to be created, then removes it, so it can never leave a container behind."""

from __future__ import annotations

import asyncio


class SessionLocks:
    def __init__(self) -> None:
        self._locks: dict[str, asyncio.Lock] = {}

    def of(self, session_id: str) -> asyncio.Lock:
        return self._locks.setdefault(session_id, asyncio.Lock())

    def forget(self, session_id: str) -> None:
        """The session is gone (its row removed)."""
        self._locks.pop(session_id, None)
