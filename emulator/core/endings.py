"""How sessions end other than by a delete, as housekeeping finds them: a container that exited (Succeeded,
Failed or OOMKilled, in the kubelet's words), one that vanished, and one the platform stopped (for its owner's
quota here; idle culling, core/idle.py, too). The container and its logs stay until the session is removed."""

from __future__ import annotations

import logging

from emulator.core.models import Session, Status
from emulator.core.observers import FailureCause
from emulator.core.record import SessionRecord
from emulator.core.store import Store
from emulator.profiles import Profile
from emulator.runtime.base import ContainerState, Runtime

log = logging.getLogger(__name__)

STOPPED_BY_PLATFORM = -1  # the exit code recorded for a session the platform stopped
OOM_EXIT_CODE = 137  # SIGKILL's, which the kernel's OOM killer sends


def exit_words(code: int) -> tuple[str, str]:
    """The event of a container that ended by itself: its reason and message."""
    return "Completed" if code == 0 else "Failed", f"Container exited with code {code}"


def oom_words(session: Session, code: int = OOM_EXIT_CODE) -> tuple[str, str]:
    """The event of a container the kernel's OOM killer ended: its reason and message."""
    limit = f"{session.resources.ram_limit_gb:g} GB"
    return (
        "OOMKilled",
        f"The kernel's OOM killer ended the container: it used its whole {limit} memory limit "
        f"(exit code {code}); ask for more RAM",
    )


def failure_cause(reason: str) -> FailureCause:
    """The cause of a Failed session's end, from its event's reason (the kubelet's OOMKilled, or an exit)."""
    return FailureCause.OOM if reason == "OOMKilled" else FailureCause.EXITED


class Endings:
    def __init__(self, store: Store, runtime: Runtime, profiles: dict[str, Profile], record: SessionRecord) -> None:
        self._store = store
        self._runtime = runtime
        self._profiles = profiles
        self._record = record

    async def ended(self, session: Session, exit_code: int | None) -> None:
        """The container exited: Succeeded on 0, else Failed, OOMKilled when the kernel ended it for
        memory (housekeeping saw it; the container and its logs stay until the session is removed)."""
        state = await self._runtime.state(self._record.container_name(session))
        code = state.exit_code if state is not None and state.exit_code is not None else exit_code
        code = code if code is not None else -1
        status = Status.SUCCEEDED if code == 0 else Status.FAILED
        profile = self._profiles.get(session.type)
        starting = session.status is Status.PENDING and profile is not None and not profile.batch
        # The event is worked out first (its output is read from the engine): whoever sees the session Failed
        # sees why, since nothing runs between the status and its event.
        reason, message = await self._why(session, state, code, starting)
        if not self._store.finish(session.id, status, self._record.now(), code):
            return  # deleted (Terminating) meanwhile: the delete stands
        self._record.event(session.id, reason, message, warning=code != 0)
        if status is Status.FAILED:
            self._record.observers.session_failed(session, failure_cause(reason))

    async def _why(self, session: Session, state: ContainerState | None, code: int, starting: bool) -> tuple[str, str]:
        """The event that says how the session ended: its reason and message."""
        if state is not None and state.reason and code != 0:  # e.g. the machine it ran on was lost
            return "Failed", f"The session ended: {state.reason}"
        if state is not None and state.oom_killed and code != 0:
            return oom_words(session, code)
        if code == OOM_EXIT_CODE and self._oom_unreported():  # SIGKILL under a limit, on an engine that never says OOM
            return (
                "Failed",
                "Container exited with code 137 under a memory limit: probably out of memory; this engine does not say",
            )
        if starting and code != 0:  # an interactive session that ended before it was ever ready
            output = await self._record.last_output(session)
            return "Failed", f"Container exited with code {code} during start-up.{output}"
        return exit_words(code)

    def _oom_unreported(self) -> bool:
        """The engine enforces memory limits but never reports an OOM kill (EngineFacts.reports_oom)."""
        facts = self._runtime.facts()
        return facts.limits.memory and not facts.reports_oom

    async def fail_vanished(self, session: Session) -> None:
        """A Running session whose container is gone (checked once more, by name) fails."""
        if await self._runtime.state(self._record.container_name(session)) is None:
            self._store.set_status(session.id, Status.FAILED, ended_at=self._record.now())
            self._record.event(session.id, "Failed", "The session's container disappeared", warning=True)
            self._record.observers.session_failed(session, FailureCause.VANISHED)

    async def stop_container(self, session: Session) -> None:
        """Stop a session's container, keeping it and its logs (its record says how it ended)."""
        await self._runtime.stop(self._record.container_name(session))

    def end_by_platform(self, session: Session, reason: str, message: str) -> bool:
        """A running session the platform stops ends Failed now, with `reason` and `message` as its last event, and
        is accounted; its container is stopped next (stop_container) and kept, with its logs, until the session is
        removed, its card offering Relaunch meanwhile. False: it ended, or a delete began, meanwhile."""
        # Failed first: the container's exit (often 0, an app that ends cleanly when asked) is then no news.
        if not self._store.finish(session.id, Status.FAILED, self._record.now(), STOPPED_BY_PLATFORM):
            return False
        self._record.event(session.id, reason, message, warning=True)
        return True

    async def stop_over_quota(self, session: Session, reason: str) -> None:
        """Stop a running session whose owner's home is over its quota: it ends Failed, with `reason` as its last
        event; its container and logs stay until it is deleted."""
        if not self.end_by_platform(session, "QuotaExceeded", reason):
            return
        self._record.observers.session_failed(session, FailureCause.QUOTA)
        log.warning("stopping session %s of %s: %s", session.id, session.user, reason)
        await self.stop_container(session)  # should this fail, housekeeping stops an ended session still running
