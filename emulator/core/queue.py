"""The queue of batch jobs waiting for room, as CANFAR queues them (Kueue, per session type: the profile's `queue`).

A job of a queueing type that the machine's free cores, memory or GPUs cannot place is admitted waiting (the
store's `admit` sets its `queued_at`): Pending, holding nothing, with no GPU, no pull and no container, its
event saying how many jobs (anyone's) wait ahead of it. `advance` starts the jobs at the head while they fit,
strictly in order of arrival (a big job at the head is not overtaken by a small one behind it): each taken out
of the queue in one store transaction, its life starting then, and its bring-up started. A head that the
machine could never hold now, even empty (its limits changed across a restart), fails with why instead of
blocking the queue for ever. It runs whenever a session ends or is removed and on every housekeeping pass. The
rows are the truth: the queue survives a service restart as it is.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from emulator.core.models import Limits, Session
from emulator.core.observers import FailureCause
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
        dropped: Callable[[Session], None] = lambda job: None,
    ) -> None:
        """`start(job, seconds it waited)` schedules a job taken out of the queue (its events, its bring-up);
        `dropped(job)` is told of one that failed instead, never to start (what was kept for it can go)."""
        self._store = store
        self._record = record
        self._gpus = gpus
        self._limits = limits
        self._start = start
        self._dropped = dropped

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
        others where they stand now; the ids of those started. A head the machine could never hold now fails,
        and the queue moves past it."""
        started = []
        while (head := self._store.start_queue_head(self._limits, self._record.now(), self._pick)) is not None:
            if head.never is not None:
                self._fail(head.job, head.never)
                continue
            self._start(head.job, (head.job.start_time - head.since).total_seconds())
            started.append(head.job.id)
        self.tell()
        return started

    def _fail(self, job: Session, why: str) -> None:
        self._record.event(
            job.id, "Failed", f"{job.type} job {job.id} could never start on this machine now: {why}", warning=True
        )
        self._record.observers.session_failed(job, FailureCause.START_UP)
        self._dropped(job)
        log.warning("queued job %s of %s could never start on this machine now: %s", job.id, job.user, why)

    def tell(self) -> None:
        """Every waiting job's event says how many jobs wait ahead of it now."""
        self._store.tell_queue(self._record.now(), QUEUED, waiting_words)

    def _pick(self, held: set[str], count: int) -> list[str] | None:
        try:
            return self._gpus.pick(held, count)
        except InvalidRequest:
            return None
