"""The queue of batch jobs waiting for room, as CANFAR queues them (Kueue, per session type: the profile's `queue`).

A job of a queueing type that the machine's free cores, memory or GPUs cannot place is admitted waiting (the
store's `admit` sets its `queued_at`): Pending, holding nothing, with no GPU, no pull and no container, its
event saying how many jobs (anyone's) wait ahead of it. `advance` starts the jobs at the head while they fit,
strictly in order of arrival (a big job at the head is not overtaken by a small one behind it): each taken out
of the queue in one store transaction, its life starting then, and its bring-up started. It runs whenever a
session ends or is removed and on every housekeeping pass. The rows are the truth: the queue survives a service
restart as it is.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from emulator.core.models import Limits, Session
from emulator.core.policy import GpuFacts
from emulator.core.record import SessionRecord
from emulator.core.store import Store
from emulator.errors import InvalidRequest

log = logging.getLogger(__name__)

QUEUED = "Queued"  # the waiting job's event (its reason), kept current as the queue moves


def waiting_words(ahead: int) -> str:
    return f"waiting for resources: {ahead} job{'' if ahead == 1 else 's'} ahead"


class JobQueue:
    def __init__(
        self,
        store: Store,
        record: SessionRecord,
        gpus: GpuFacts,
        limits: Limits,
        start: Callable[[Session, float], None],
    ) -> None:
        """`start(job, seconds it waited)` schedules a job taken out of the queue (its events, its bring-up)."""
        self._store = store
        self._record = record
        self._gpus = gpus
        self._limits = limits
        self._start = start

    def length(self) -> int:
        """How many jobs wait."""
        return self._store.queue_length()

    def ahead(self) -> dict[str, int]:
        """Each waiting job's id, with how many jobs wait ahead of it."""
        return self._store.jobs_ahead()

    def place_gpus(self, count: int) -> list[str] | None:
        """The GPU devices a job of a queueing type, asking for `count`, gets now; None: not that many are free,
        and it waits for them."""
        return self._pick(self._store.gpu_devices_in_use(), count)

    def advance(self) -> list[str]:
        """Start the jobs at the head of the queue while the machine has room for them, in order, and tell the
        others where they stand now; the ids of those started."""
        started = []
        while (head := self._store.start_queue_head(self._limits, self._record.now(), self._pick)) is not None:
            job, since = head
            self._start(job, (job.start_time - since).total_seconds())
            started.append(job.id)
        self.tell()
        return started

    def tell(self) -> None:
        """Every waiting job's event says how many jobs wait ahead of it now."""
        self._store.tell_queue(self._record.now(), QUEUED, waiting_words)

    def _pick(self, held: set[str], count: int) -> list[str] | None:
        try:
            return self._gpus.pick(held, count)
        except InvalidRequest:
            return None
