"""Background work kept per session, at most one task each (a session's bring-up, its fault's clock): each
forgotten once done, its failure logged (nobody awaits it), and all of them cancelled when the service stops."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

log = logging.getLogger(__name__)


class SessionTasks:
    def __init__(self, what: str) -> None:
        self._what = what  # names the tasks and their failures in the log: "bring-up", "fault"
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def get(self, session_id: str) -> asyncio.Task[None] | None:
        return self._tasks.get(session_id)

    def start(self, session_id: str, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work, name=f"{self._what}-{session_id}")
        self._tasks[session_id] = task
        task.add_done_callback(lambda done: self._forget(session_id, done))

    def cancel(self, session_id: str) -> None:
        task = self._tasks.pop(session_id, None)
        if task is not None:
            task.cancel()

    def running(self) -> list[asyncio.Task[None]]:
        """The tasks under way (the service cancels them when it stops)."""
        return list(self._tasks.values())

    def _forget(self, session_id: str, task: asyncio.Task[None]) -> None:
        if self._tasks.get(session_id) is task:  # not one cancelled and started again meanwhile
            del self._tasks[session_id]
        if not task.cancelled() and task.exception() is not None:
            log.error("%s of session %s failed", self._what, session_id, exc_info=task.exception())
