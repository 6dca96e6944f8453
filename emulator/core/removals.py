"""Removing a session entirely: its container, its files and its row (a delete, an expiry, the end of its
retention, a user removed). Concurrent calls share one removal, and a desktop's apps go with it. The
session's lock (locks.py) makes a removal wait while a bring-up creates the container, so none is left behind.
"""

from __future__ import annotations

import asyncio
import shutil

from emulator.core.locks import SessionLocks
from emulator.core.models import Session, Status
from emulator.core.record import SessionRecord
from emulator.core.store import Store
from emulator.runtime.base import Runtime
from emulator.settings import Settings


class Removals:
    def __init__(
        self, settings: Settings, store: Store, runtime: Runtime, record: SessionRecord, locks: SessionLocks
    ) -> None:
        self._settings = settings
        self._store = store
        self._runtime = runtime
        self._record = record
        self._locks = locks
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def under_way(self, session_id: str) -> bool:
        return session_id in self._tasks

    def running(self) -> list[asyncio.Task[None]]:
        """The removals under way (the service cancels them when it stops)."""
        return list(self._tasks.values())

    async def remove(self, session: Session) -> None:
        """Remove a session entirely: container, files, row. Concurrent calls share one removal."""
        task = self._tasks.get(session.id)
        if task is None:
            self._store.set_status(session.id, Status.TERMINATING, ended_at=self._record.now())
            task = asyncio.create_task(self._remove(session), name=f"terminate-{session.id}")
            self._tasks[session.id] = task
            task.add_done_callback(lambda _: self._tasks.pop(session.id, None))
        await asyncio.shield(task)

    async def _remove(self, session: Session) -> None:
        # A desktop's apps die with it.
        await asyncio.gather(*(self.remove(app) for app in self._store.apps_of(session.id)))
        async with self._locks.of(session.id):
            await self._runtime.remove(self._record.container_name(session))
            shutil.rmtree(self._settings.layout.session_files(session.id), ignore_errors=True)
            self._store.remove(session.id)
        self._locks.forget(session.id)
