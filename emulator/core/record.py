"""What a session's record says as it changes: its events (kubectl's), and a start that failed.

Shared by the manager, the bring-up (bringup.py), the session's pull (pulls.py) and housekeeping's
endings (endings.py), so each tells a session's story in the same words and on the same clock.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime

from emulator import naming
from emulator.core.models import Session, Status
from emulator.core.observers import FailureCause, Observers
from emulator.core.store import Store
from emulator.errors import EmulatorError
from emulator.runtime.base import Runtime

log = logging.getLogger(__name__)


def utcnow() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


class SessionRecord:
    def __init__(self, store: Store, runtime: Runtime, prefix: str, clock: Callable[[], datetime] = utcnow) -> None:
        self._store = store
        self._runtime = runtime
        self._prefix = prefix
        self._clock = clock
        self.observers = Observers()  # whoever watches the platform (the service adds its metrics, its audit log)

    def now(self) -> datetime:
        return self._clock()

    def container_name(self, session: Session) -> str:
        return naming.session_container(self._prefix, session.type, session.id)

    def event(self, session_id: str, reason: str, message: str, warning: bool = False) -> None:
        self._store.record_event(session_id, "Warning" if warning else "Normal", reason, message, self._clock())

    def still_pending(self, session_id: str) -> bool:
        session = self._store.get(session_id)
        return session is not None and session.status is Status.PENDING

    async def fail_start(self, session_id: str, reason: str, cause: FailureCause = FailureCause.START_UP) -> None:
        """A Pending session fails, its container removed, with `reason` as its last event and `cause` told to
        the observers (nothing changes when it was deleted or ended meanwhile)."""
        session = self._store.get(session_id)
        if session is None or session.status is not Status.PENDING:
            return  # deleted meanwhile
        try:
            await self._runtime.remove(self.container_name(session))
        except Exception:  # the row still says Failed; housekeeping removes the container with it later
            log.exception("could not remove the container of failed session %s", session_id)
        if not self._store.fail_pending(session_id, self._clock()):
            return  # it ended (or a delete began) while its container was removed: that end stands
        self.event(session_id, "Failed", reason, warning=True)
        self.observers.session_failed(session, cause)
        log.warning("session %s of %s failed to start: %s", session_id, session.user, reason.splitlines()[0])

    async def last_output(self, session: Session, lines: int = 10) -> str:
        """The container's last lines of output, for a reason that ends a start (empty when none)."""
        try:
            text = await self._runtime.logs(self.container_name(session), lines, 4096)
        except EmulatorError:
            return ""
        return f" Its last output:\n{text.rstrip()}" if text.strip() else " It wrote no output."
