"""The admins' verbs over every user's sessions and desktop-apps: see them all, renew any, delete any, delete
all of one user's, delete every session. The admin page and the admin API (api/admin.py, api/admin_page.py)
call them once the caller is known to be an admin; the faces write the audit lines.

skaha has no such verbs (CANFAR's operators use kubectl). These do what the owner's own verbs do, on anyone's
session: a renew is the owner's rule (renewal.py: skaha's renew, a desktop's apps with it; an app renews by its
desktop), and a delete is the same removal as the owner's; each says which admin acted (the renew's event, the
service's log).
The pure parts (which rows, in what order, each user's share of the machine, the typed confirmations) are
functions beside the class, so the faces and the unit tests share them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from emulator.core import renewal
from emulator.core.identity import UsersSource
from emulator.core.models import GIB, Event, Session, Status, User
from emulator.core.policy import shown
from emulator.core.record import SessionRecord
from emulator.core.store import Store
from emulator.errors import InvalidRequest, NotFound
from emulator.runtime.base import Runtime, Usage
from emulator.settings import Settings

log = logging.getLogger(__name__)

EVERYTHING = "everything"  # the word an admin types to delete every session of every user


@dataclass(frozen=True)
class Row:
    """One session or desktop-app as an admin sees it, at `now`."""

    session: Session
    owner: User | None  # None: its user left the users file (`users rm --keep-sessions`)
    latest: Event | None  # its newest event
    usage: Usage | None  # its last sample (Running sessions only)
    connect_url: str
    now: datetime

    @property
    def age_seconds(self) -> int:
        return max(0, int((self.now - self.session.start_time).total_seconds()))

    @property
    def seconds_left(self) -> int:
        return max(0, int((self.session.expiry_time - self.now).total_seconds()))


@dataclass(frozen=True)
class Share:
    """One user's part of the machine: their live sessions, what the running ones asked for and use now."""

    user: str
    sessions: int
    cores: float
    ram_gb: float
    cores_used: float | None  # None: no figure yet for any of them
    ram_used_gb: float | None


@dataclass(frozen=True)
class Hooks:
    """What the admin verbs take from the SessionManager: its removal, and a session's figures and URL."""

    terminate: Callable[[Session], Awaitable[None]]
    usage: Callable[[Session], Usage | None]
    connect_url: Callable[[Session], str]


# How the rows can be ordered (the page's columns); ties keep the store's order (by start, then id).
SORT_KEYS: dict[str, Callable[[Row], Any]] = {
    "user": lambda row: row.session.user,
    "type": lambda row: row.session.type.value,
    "name": lambda row: row.session.name,
    "status": lambda row: row.session.status.value,
    "image": lambda row: row.session.image,
    "age": lambda row: row.age_seconds,
    "left": lambda row: row.seconds_left,
    "cores": lambda row: row.session.resources.cores_request,
    "ram": lambda row: row.session.resources.ram_request_gb,
    # Never active sorts before any activity: oldest first is "idlest first".
    "activity": lambda row: row.session.last_activity.timestamp() if row.session.last_activity else float("-inf"),
}


def sort_key(name: str | None) -> str:
    """The ordering asked for (default: by user), or 400 naming the ones there are."""
    if not name:
        return "user"
    if name not in SORT_KEYS:
        raise InvalidRequest(f"unknown sort '{shown(name)}': one of {', '.join(SORT_KEYS)}")
    return name


def status_named(word: str | None) -> Status | None:
    """A status filter as the API or the page names it (any case; v1's Completed is Succeeded), or 400."""
    if not word:
        return None
    wanted = "succeeded" if word.lower() == "completed" else word.lower()
    found = next((status for status in Status if status.value.lower() == wanted), None)
    if found is None:
        raise InvalidRequest(f"unknown status '{shown(word)}': one of {', '.join(s.value for s in Status)}")
    return found


def choose(rows: Iterable[Row], user: str | None, status: Status | None, sort: str, descending: bool) -> list[Row]:
    """The rows of `user` (all users: None) in `status` (any: None), ordered by `sort`."""
    chosen = [
        row
        for row in rows
        if (user is None or row.session.user == user) and (status is None or row.session.status is status)
    ]
    return sorted(chosen, key=SORT_KEYS[sort], reverse=descending)


def shares(sessions: Iterable[Session], usage: Callable[[Session], Usage | None]) -> list[Share]:
    """Each user with a live session, by name: how many they have, the cores and RAM their running ones asked
    for (the platform's load counts those) and what those use now."""
    found: dict[str, list[Session]] = {}
    for session in sessions:
        if session.status.live:
            found.setdefault(session.user, []).append(session)
    result = []
    for user, mine in sorted(found.items()):
        running = [s for s in mine if s.status is Status.RUNNING]
        samples = [sample for sample in map(usage, running) if sample is not None]
        result.append(
            Share(
                user=user,
                sessions=len(mine),
                cores=sum(s.resources.cores_request for s in running),
                ram_gb=sum(s.resources.ram_request_gb for s in running),
                cores_used=sum(u.cpu_cores for u in samples) if samples else None,
                ram_used_gb=sum(u.memory_bytes for u in samples) / GIB if samples else None,
            )
        )
    return result


def check_typed(expected: str, typed: str | None, what: str) -> None:
    """A bulk delete goes ahead only when the admin typed `expected` (the user's name, or the word everything)."""
    if typed != expected:
        raise InvalidRequest(f"to delete {shown(what)}, type '{shown(expected)}' to confirm")


class Admin:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        runtime: Runtime,
        users: UsersSource,
        record: SessionRecord,
        hooks: Hooks,
    ) -> None:
        self._settings = settings
        self._store = store
        self._runtime = runtime
        self._users = users
        self._record = record
        self._hooks = hooks

    # --- what an admin sees ---------------------------------------------------------------

    def rows(self) -> list[Row]:
        """Every session and desktop-app of every user (ended ones too, until housekeeping removes them)."""
        now = self._record.now()
        owners = {user.name: user for user in self._users.current().users}
        latest = self._store.latest_events()
        return [self._row(s, owners.get(s.user), latest.get(s.id), now) for s in self._store.sessions()]

    def row(self, ref: str) -> Row:
        session = self.find(ref)
        events = self._store.events(session.id)
        owner = self._users.current().get(session.user)
        return self._row(session, owner, events[-1] if events else None, self._record.now())

    def _row(self, session: Session, owner: User | None, latest: Event | None, now: datetime) -> Row:
        return Row(session, owner, latest, self._hooks.usage(session), self._hooks.connect_url(session), now)

    def users(self) -> list[str]:
        """Everyone in the users file and anyone who still has a session, by name."""
        named = {user.name for user in self._users.current().users}
        return sorted(named | {s.user for s in self._store.sessions()})

    def find(self, ref: str) -> Session:
        """A session or desktop-app by the id the admin routes take (an app's: `<desktop id>-<app id>`)."""
        session = self._store.get(ref)
        if session is None:
            raise NotFound(f"no session {shown(ref)}")
        return session

    def events(self, ref: str) -> list[Event]:
        return self._store.events(self.find(ref).id)

    async def logs(self, ref: str) -> str:
        """The session's newest output (as its owner's `view=logs`: a desktop's includes its apps')."""
        session = self.find(ref)
        tail, limit = self._settings.log_tail_lines, self._settings.log_max_bytes
        parts = [
            await self._runtime.logs(self._record.container_name(s), tail, limit)
            for s in [session, *self._store.apps_of(session.id)]
        ]
        return "".join(parts)

    # --- what an admin does ---------------------------------------------------------------

    def renew(self, admin: User, ref: str) -> tuple[Session, datetime]:
        """skaha's renew of anyone's session (an app's renews its desktop): the session and its new expiry."""
        target = self.find(ref)
        if target.parent_id is not None:
            target = self.find(target.parent_id)
        if not target.status.live:
            raise InvalidRequest(
                f"session {target.id} is {target.status.value}: only a Pending or Running session can be renewed"
            )
        new_expiry = renewal.extend(self._store, self._record, target, self._settings.session_expiry_seconds, admin)
        log.info("admin %s renewed session %s of %s", admin.name, target.id, target.user)
        return target, new_expiry

    async def delete(self, admin: User, ref: str) -> Session:
        """Anyone's session (a desktop's apps go with it) or desktop-app, removed as its owner's delete does."""
        session = self.find(ref)
        log.info("admin %s deletes session %s of %s", admin.name, session.id, session.user)
        await self._hooks.terminate(session)
        return session

    async def delete_user(self, admin: User, name: str, typed: str | None) -> list[Session]:
        """Every session of one user (`typed`: their name again); the sessions deleted."""
        sessions = self._store.sessions(name)
        if not sessions and self._users.current().get(name) is None:
            raise NotFound(f"no user {shown(name)}")
        check_typed(name, typed, f"every session of {name}")
        await self._remove(admin, sessions, f"every session of {name}")
        return sessions

    async def delete_all(self, admin: User, typed: str | None) -> list[Session]:
        """Every session of every user (`typed`: the word everything); the sessions deleted."""
        check_typed(EVERYTHING, typed, "every session of every user")
        sessions = self._store.sessions()
        await self._remove(admin, sessions, "every session")
        return sessions

    async def _remove(self, admin: User, sessions: list[Session], what: str) -> None:
        """All at once (a desktop's apps share its removal); every removal runs to its end before a failure
        of one is raised."""
        log.info("admin %s deletes %s (%d)", admin.name, what, len(sessions))
        results = await asyncio.gather(*(self._hooks.terminate(s) for s in sessions), return_exceptions=True)
        failed = [result for result in results if isinstance(result, BaseException)]
        if failed:
            raise failed[0]
