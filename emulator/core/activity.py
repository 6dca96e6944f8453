"""Sessions' last activity: when a request last went through the gateway to each, from the gateway's own access
log (gateway/access_log.py), never by asking the session's app.

Only the published port is logged: the internal one carries the service's readiness probes and sessions' own
calls, which are nobody's use of a session. A line names a session only when the request got past the route's
checks (a stranger's refused request names none), and an answer the session's app gave as a refusal of its own
(401, 403: a notebook's token check, where the platform asks no sign-in) is no use of it either. The newest
visit of each session is written in one batch per read (`store.record_activity`, which never moves one back).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from datetime import datetime

from emulator.core.store import Store
from emulator.gateway.base import AccessLog, Visit

READ_INTERVAL_SECONDS = 2.0  # how often the service reads the log: last activity is shown to the minute
REFUSED = frozenset({401, 403})


def counts(visit: Visit) -> bool:
    return visit.status not in REFUSED


def newest(visits: Iterable[Visit]) -> dict[str, datetime]:
    """The newest time each session was visited, of the visits that count."""
    found: dict[str, datetime] = {}
    for visit in visits:
        if counts(visit) and (visit.session_id not in found or visit.when > found[visit.session_id]):
            found[visit.session_id] = visit.when
    return found


class ActivityTracker:
    def __init__(self, store: Store, log: AccessLog) -> None:
        self._store = store
        self._log = log
        self._lock = asyncio.Lock()  # one read at a time: the culler reads before it decides, beside the loop

    async def run_once(self) -> None:
        """Read what the gateway logged since the last read (off the event loop) and record it."""
        async with self._lock:
            seen = newest(await asyncio.to_thread(self._log.read))
            if seen:
                self._store.record_activity(seen)

    def seen(self, session_ids: Iterable[str], when: datetime) -> None:
        """These sessions were in use at `when` (the gateway held a connection to each open)."""
        found = dict.fromkeys(session_ids, when)
        if found:
            self._store.record_activity(found)
