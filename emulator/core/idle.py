"""Idle culling (EMULATE_IDLE_CULL_HOURS, off unless set, as on CANFAR): an interactive session nobody has used
through the gateway for that long is stopped, its owner warned on the dashboard first.

Idle is measured from the later of its last activity (core/activity.py) and the time it became ready (a renew is
no use of it). An hour before its deadline (half the time, for a limit under two hours) the session gets a warning
event, which its card shows until someone opens it; at the deadline (never sooner than that lead after the
warning) it ends as one the platform stops does (core/endings.py): Failed, its last event saying why, its
container stopped, with a line in the audit log. Its card stays, with that reason and Relaunch, for the ended
sessions' retention, after which housekeeping removes it. Desktop-apps go with their desktop, and batch jobs are
never culled.

A WebSocket (noVNC, a Jupyter kernel, CARTA) is logged only when it closes, so a session in use for hours through
one would look idle. Before warning or stopping, the culler therefore asks whether the gateway holds a connection
open to the session (`GatewayConnections`: the gateway's own TCP table, read inside it), and counts one as activity
now. Where that cannot be read (or the session's address is not known) it warns and stops nothing. That look takes
a while, so the log is read again after it and each session judged again from its row and events as they are then.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from emulator.core.activity import ActivityTracker
from emulator.core.addresses import SessionAddresses
from emulator.core.endings import Endings
from emulator.core.models import Event, Session, Status
from emulator.core.sessions import SessionManager
from emulator.core.store import Store
from emulator.profiles import Profile
from emulator.runtime.base import Runtime

log = logging.getLogger(__name__)

WARNING = "IdleWarning"
CULLED = "IdleCulled"
READY_REASONS = ("Ready", "Running")  # the events a session's start ends with (bringup.py)
LEAD = timedelta(hours=1)


@dataclass(frozen=True)
class IdleRule:
    limit: timedelta

    @classmethod
    def from_hours(cls, hours: float | None) -> IdleRule | None:
        return None if hours is None else cls(timedelta(hours=hours))

    @property
    def lead(self) -> timedelta:
        """How long before its deadline an idle session's owner is warned."""
        return min(LEAD, self.limit / 2)


def _clock(moment: datetime) -> str:
    return moment.strftime("%H:%M UTC")


def idle_since(session: Session, events: Sequence[Event]) -> datetime:
    """When the session was last in use: its last activity, or when it became ready if that is later."""
    ready = [e.last_time for e in events if e.reason in READY_REASONS]
    moments = [session.start_time, *ready[-1:], *([session.last_activity] if session.last_activity else [])]
    return max(moments)


def warning(session: Session, events: Sequence[Event]) -> Event | None:
    """The warning given for the idle spell the session is in now (None: none given, or it was used since)."""
    given = [e for e in events if e.reason == WARNING]
    return given[-1] if given and given[-1].last_time >= idle_since(session, events) else None


@dataclass(frozen=True)
class Verdict:
    cull: bool  # False: warn its owner
    since: datetime  # idle since then
    deadline: datetime  # deleted then (the warning says so)


def judge(session: Session, events: Sequence[Event], now: datetime, rule: IdleRule) -> Verdict | None:
    """What is due for a session with no connection open through the gateway: a warning once it has been idle
    for `limit - lead`, deletion at its deadline. However late that is found (a service that was down), the
    deadline is never less than `lead` after the warning: nobody loses a session they were not warned of."""
    since = idle_since(session, events)
    deadline = since + rule.limit
    given = warning(session, events)
    if given is None:
        return Verdict(False, since, max(deadline, now + rule.lead)) if now >= deadline - rule.lead else None
    deadline = max(deadline, given.first_time + rule.lead)
    return Verdict(True, since, deadline) if now >= deadline else None


def verdict_words(verdict: Verdict) -> str:
    """The event's message: the owner's warning, on the dashboard until someone opens the session, or why it ended
    (the card's reason). A renew is no use of it: the warning says so."""
    if verdict.cull:
        return f"Stopped for inactivity: no traffic through the gateway since {_clock(verdict.since)}"
    deadline = _clock(verdict.deadline)
    return f"This session will be stopped at {deadline} for inactivity; open it to keep it; renewing does not."


def judge_again(
    session: Session | None, events: Sequence[Event], now: datetime, rule: IdleRule, removing: bool
) -> Verdict | None:
    """What is due for a session read again just before acting on it: nothing for one gone, ended or being removed
    meanwhile (its owner deleted it), else what its row and events say now (a visit meanwhile begins a new spell)."""
    if session is None or session.status is not Status.RUNNING or removing:
        return None
    return judge(session, events, now, rule)


def notice(session: Session, events: Sequence[Event]) -> str:
    """What the owner's dashboard says of a session about to be culled ("" for any other)."""
    found = warning(session, events) if session.status is Status.RUNNING else None
    return found.message if found else ""


class GatewayConnections:
    """Which sessions the gateway holds a TCP connection open to (an open WebSocket, a long response)."""

    def __init__(
        self, runtime: Runtime, addresses: SessionAddresses, gateway: str, container: Callable[[Session], str]
    ) -> None:
        self._runtime = runtime
        self._addresses = addresses
        self._gateway = gateway  # its container's name
        self._container = container

    async def open_to(self, sessions: Sequence[Session]) -> dict[str, bool] | None:
        """Whether it holds one open to each of `sessions`, by id (one whose address is unknown is left out: no
        answer); None when the gateway's table cannot be read."""
        peers = await self._runtime.outbound_peers(self._gateway)
        if peers is None:
            return None
        found = {}
        for session in sessions:
            address = await self._addresses.lookup(self._container(session))
            if address is not None:
                found[session.id] = address in peers
        return found


class IdleCuller:
    def __init__(
        self,
        rule: IdleRule,
        manager: SessionManager,
        store: Store,
        profiles: dict[str, Profile],
        tracker: ActivityTracker,
        connections: GatewayConnections,
        endings: Endings,
    ) -> None:
        self._rule = rule
        self._manager = manager
        self._store = store
        self._profiles = profiles
        self._tracker = tracker
        self._connections = connections
        self._endings = endings

    def _cullable(self, session: Session) -> bool:
        profile = self._profiles.get(session.type)
        interactive = profile is not None and profile.interactive and not profile.batch
        running = session.status is Status.RUNNING and not self._manager.terminating(session.id)
        return interactive and running and session.parent_id is None

    def _due(self, now: datetime) -> list[Session]:
        """Running interactive sessions idle long enough to be warned or stopped (their events are read only for
        those whose row alone says they may be)."""
        first = now - self._rule.limit + self._rule.lead  # idle since then or earlier: warn
        due = []
        for session in self._store.sessions():
            used = max(session.start_time, session.last_activity or session.start_time)
            if used > first or not self._cullable(session):
                continue
            if idle_since(session, self._store.events(session.id)) <= first:
                due.append(session)
        return due

    async def run_once(self) -> None:
        await self._tracker.run_once()  # what the gateway logged up to now
        due = self._due(self._manager.now())
        if not due:
            return
        open_to = await self._connections.open_to(due)
        if open_to is None:
            log.warning("idle culling skipped: the gateway's open connections could not be read")
            return
        now = self._manager.now()
        self._tracker.seen([session_id for session_id, held in open_to.items() if held], now)
        await self._tracker.run_once()  # and what it logged while its connections were looked at
        # Every session is judged before any container is stopped (which awaits): each as the log has it now.
        ended = [s for s in due if open_to.get(s.id) is False and self._act(s.id, now)]  # none open (address known)
        stops = await asyncio.gather(*(self._endings.stop_container(s) for s in ended), return_exceptions=True)
        for failed in stops:
            if isinstance(failed, Exception):  # housekeeping stops an ended session still running
                log.error("could not stop a session culled for inactivity: %s", failed)

    def _act(self, session_id: str, now: datetime) -> bool:
        """Warn the owner of a session, or end it (True: its container is to be stopped), as it is now."""
        session = self._store.get(session_id)  # used, ended or deleted meanwhile: left alone
        events = self._store.events(session_id) if session is not None else []
        verdict = judge_again(session, events, now, self._rule, self._manager.terminating(session_id))
        if session is None or verdict is None:
            return False
        if not verdict.cull:
            self._manager.record.event(session.id, WARNING, verdict_words(verdict), warning=True)
            return False
        if not self._endings.end_by_platform(session, CULLED, verdict_words(verdict)):
            return False  # ended, or a delete began, meanwhile
        self._manager.record.observers.session_idle_culled(session)  # the audit log's line
        log.info("stopping session %s of %s, idle since %s", session.id, session.user, verdict.since.isoformat())
        return True
