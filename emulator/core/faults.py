"""Faults a launch asked for (only where the platform runs with EMULATE_FAULTS=true; policy.check_fault takes
them), made to happen as CANFAR users meet them, so that a client's time-outs and clean-up can be tested
before production:

- pending: no machine ever takes the session. It stays Pending, its events say FailedScheduling in the
  scheduler's words (again at each of its retries, counted on the one event, as Kubernetes does), until it is
  deleted or expires.
- pull: its image pull fails (pulls.py tells it, in a real failed pull's words).
- oom:SECONDS: SECONDS after it runs, the kernel's OOM killer ends it, for real where the engine allows
  (Runtime.exhaust_memory; housekeeping's endings.py then reports it, as any OOM kill); elsewhere it is killed
  with exit code 137 and the OOMKilled reason, its event saying the kill was the platform's (EMULATED_OOM).
- end:SECONDS[:CODE]: SECONDS after it runs, its container ends, as one that exited by itself with CODE (0
  by default: Succeeded, Completed in v1).

The timed ones are armed once the session is Running (bringup.py), again after a service restart
(housekeeping's reconciliation, counting from the session's Running event), and disarmed when it is removed.
"""

from __future__ import annotations

import asyncio
import logging

from emulator.core.endings import OOM_EXIT_CODE, exit_words, failure_cause, oom_words
from emulator.core.models import Fault, FaultKind, Session, Status
from emulator.core.record import SessionRecord
from emulator.core.store import Store
from emulator.core.tasks import SessionTasks
from emulator.runtime.base import Runtime

log = logging.getLogger(__name__)

EMULATED_OOM = (
    "The platform killed the container for fault=oom (exit code 137): this engine could not run a real "
    "out-of-memory kill here (a swarm, memory limits not enforced, or no sh and tail in the image)"
)

# kube-scheduler's words for a pod no node can take (its preemption found nothing to evict either).
UNSCHEDULABLE = (
    "0/1 nodes are available: 1 Insufficient cpu, 1 Insufficient memory. "
    "preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod."
)
SCHEDULING_RETRY_SECONDS = 10.0  # kube-scheduler's longest back-off before it tries such a pod again
RUNNING_REASONS = ("Running", "Ready")  # the events that say a session runs (bringup.py)


class Faults:
    def __init__(self, store: Store, runtime: Runtime, record: SessionRecord) -> None:
        self._store = store
        self._runtime = runtime
        self._record = record
        self._timers = SessionTasks("fault")

    # --- pending: never scheduled -------------------------------------------------------------

    @staticmethod
    def holds(session: Session) -> bool:
        """The session's launch asked that no machine ever take it (fault=pending)."""
        return session.fault is not None and session.fault.kind is FaultKind.PENDING

    def unschedulable(self, session_id: str) -> None:
        """The scheduler's event that no machine can take the session (a repeat counts on the same event)."""
        self._record.event(session_id, "FailedScheduling", UNSCHEDULABLE, warning=True)

    async def hold(self, session_id: str) -> None:
        """Keep the session Pending for as long as it is wanted, the scheduler saying so at each retry."""
        while True:
            await asyncio.sleep(SCHEDULING_RETRY_SECONDS)
            if not self._record.still_pending(session_id):
                return  # deleted, or expired
            self.unschedulable(session_id)

    # --- oom and end: a while after it runs -----------------------------------------------------

    def arm(self, session: Session, ran_for: float = 0.0) -> None:
        """Start the clock of a Running session's timed fault, if it has one (`ran_for`: seconds it ran already)."""
        fault = session.fault
        if fault is None or not fault.timed or self._timers.get(session.id) is not None:
            return
        self._timers.start(session.id, self._strike(session.id, fault, max(0.0, fault.seconds - ran_for)))

    def resume(self, session: Session) -> None:
        """Arm a Running session's fault again after a service restart, counting from its Running event."""
        events = self._store.events(session.id)
        since = next((e.first_time for e in reversed(events) if e.reason in RUNNING_REASONS), None)
        self.arm(session, (self._record.now() - since).total_seconds() if since else 0.0)

    def disarm(self, session_id: str) -> None:
        """The session goes: its fault's clock stops."""
        self._timers.cancel(session_id)

    def running(self) -> list[asyncio.Task[None]]:
        """The clocks under way (the service cancels them when it stops)."""
        return self._timers.running()

    async def _strike(self, session_id: str, fault: Fault, delay: float) -> None:
        await asyncio.sleep(delay)
        session = self._store.get(session_id)
        if session is None or session.status is not Status.RUNNING:
            return  # it ended by itself, or is being removed, meanwhile
        container = self._record.container_name(session)
        state = await self._runtime.state(container)
        if state is None or state.state != "running":
            return  # it ended by itself a moment ago: housekeeping tells how, not the fault
        log.warning("session %s: fault %s strikes, as its launch asked", session_id, fault)
        if fault.kind is FaultKind.OOM:
            if await self._runtime.exhaust_memory(container):
                return  # ended by the kernel: housekeeping finds it so, as any OOM kill
            # Said, never faked: the reason is the one a client's code looks for, the words say it was not the kernel.
            reason, _ = oom_words(session)
            await self._end(session, OOM_EXIT_CODE, (reason, EMULATED_OOM))
        else:
            await self._end(session, fault.exit_code, exit_words(fault.exit_code))

    async def _end(self, session: Session, code: int, words: tuple[str, str]) -> None:
        """The session's end recorded first (the kill's own exit code is then no news), then its container
        killed, kept with its logs until the session is removed."""
        status = Status.SUCCEEDED if code == 0 else Status.FAILED
        if not self._store.finish(session.id, status, self._record.now(), code):
            return  # it ended, or a delete began, meanwhile
        reason, message = words
        self._record.event(session.id, reason, message, warning=code != 0)
        if status is Status.FAILED:
            self._record.observers.session_failed(session, failure_cause(reason))
        await self._runtime.kill(self._record.container_name(session))
