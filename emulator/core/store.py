"""SQLite (WAL) repository: every SQL statement of the service lives here.

The per-user session limit is checked and the row inserted inside one
`BEGIN IMMEDIATE` transaction, so parallel launches (threads or processes)
can never exceed it.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from emulator.core import policy
from emulator.core.models import DevMount, Event, Limits, Resources, Session, Status
from emulator.errors import ConfigError, InvalidRequest
from emulator.session_types import SessionType

SCHEMA_VERSION = 6
# Tables of version 6: what each session used, kept as it ends (usage accounting), and the platform's notices.
_SCHEMA_6 = """
CREATE TABLE IF NOT EXISTS usage (
    session_id TEXT PRIMARY KEY,  -- one row a session, written once, as it stops being live
    user TEXT NOT NULL,
    type TEXT NOT NULL,
    started TEXT NOT NULL,
    ended TEXT NOT NULL,
    cores REAL NOT NULL,  -- its cores request (core-hours = cores x hours)
    ram_gb REAL NOT NULL,
    gpus INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS usage_ended ON usage(ended);
CREATE TABLE IF NOT EXISTS notices (
    key TEXT PRIMARY KEY,  -- "broadcast": the admins' message to every dashboard
    text TEXT NOT NULL,
    set_by TEXT NOT NULL,
    set_at TEXT NOT NULL
);
"""
_SCHEMA = (
    """
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY,
    user TEXT NOT NULL,
    type TEXT NOT NULL,
    name TEXT NOT NULL,
    image TEXT NOT NULL,
    status TEXT NOT NULL,
    cores_request REAL NOT NULL,
    cores_limit REAL NOT NULL,
    ram_request_gb REAL NOT NULL,
    ram_limit_gb REAL NOT NULL,
    gpus INTEGER NOT NULL DEFAULT 0,
    fixed INTEGER NOT NULL DEFAULT 0,
    start_time TEXT NOT NULL,
    expiry_time TEXT NOT NULL,
    env TEXT NOT NULL DEFAULT '[]',
    cmd TEXT,
    args TEXT,
    gpu_devices TEXT NOT NULL DEFAULT '[]',
    ended_at TEXT,
    exit_code INTEGER,
    parent_id TEXT,
    app_id TEXT,
    fault TEXT,  -- what its launch asked to go wrong (EMULATE_FAULTS=true), as it asked: oom:30
    mounts TEXT NOT NULL DEFAULT '[]',
    last_activity TEXT,  -- when a request last went through the gateway to it (its access log)
    queued_at TEXT  -- a batch job waiting for resources since then (None: admitted); see core/queue.py
);
CREATE INDEX IF NOT EXISTS sessions_user ON sessions(user);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    session_id TEXT NOT NULL,
    type TEXT NOT NULL,
    reason TEXT NOT NULL,
    message TEXT NOT NULL,
    first_time TEXT NOT NULL,
    last_time TEXT NOT NULL,
    count INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX IF NOT EXISTS events_session ON events(session_id);
CREATE TABLE IF NOT EXISTS private_images (
    key TEXT PRIMARY KEY  -- an image id, or "ref:" and the name a launch pulled with credentials
);
"""
    + _SCHEMA_6
)

# Steps that bring a database of version N-1 to version N (a new database gets _SCHEMA directly).
_MIGRATIONS: dict[int, str] = {
    2: "ALTER TABLE sessions ADD COLUMN parent_id TEXT; ALTER TABLE sessions ADD COLUMN app_id TEXT;",
    3: "CREATE TABLE IF NOT EXISTS private_images (key TEXT PRIMARY KEY);",
    4: "ALTER TABLE sessions ADD COLUMN fault TEXT;",
    5: "ALTER TABLE sessions ADD COLUMN mounts TEXT NOT NULL DEFAULT '[]';",
    6: "ALTER TABLE sessions ADD COLUMN last_activity TEXT; ALTER TABLE sessions ADD COLUMN queued_at TEXT;"
    + _SCHEMA_6,
}

# Statuses that no longer count towards the interactive limit (skaha v0).
_UNCOUNTED_STATUSES = (Status.TERMINATING.value, Status.SUCCEEDED.value)
# Statuses of a session that holds what it asked for (one being removed holds until it is gone).
_HOLDING = (Status.PENDING.value, Status.RUNNING.value, Status.TERMINATING.value)
# A job waiting in the queue (core/queue.py): `_waiting(table)` with these arguments, in `_queue_order(table)`.
_WAITING_ARGS = (Status.PENDING.value,)


def _waiting(table: str = "sessions") -> str:
    """The condition that a sessions row (`table`: its name or alias in the query) is a job waiting in the queue;
    qualified, so that it means the same in a query that joins other tables."""
    return f"{table}.queued_at IS NOT NULL AND {table}.status = ?"


def _queue_order(table: str = "sessions") -> str:
    """The queue's order is arrival: queued_at, then the row's insertion (SQLite's rowid) among those of one
    second."""
    return f"ORDER BY {table}.queued_at, {table}.rowid"


def _ts(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _dt(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _never_fits(r: Resources, limits: Limits) -> str | None:
    """Why this machine could not hold a fixed session of these resources even with nothing else running, in
    words (None: it could)."""
    if r.ram_request_gb > limits.fixed_memory_gb + 1e-9:
        return (
            f"Not enough memory on this machine for {r.ram_request_gb:g} GB, ever: fixed sessions may hold at most "
            f"{limits.fixed_memory_gb:.1f} GB here ({limits.fixed_memory_gb + limits.headroom_gb:.1f} GB less "
            f"{limits.headroom_gb:g} GB kept back), so it could never start"
        )
    if r.cores_request > limits.fixed_cores + 1e-9:
        return (
            f"Not enough cores on this machine for {r.cores_request:g}, ever: it has {limits.fixed_cores:g}, "
            "so it could never start"
        )
    return None


def _check_ever_fits(r: Resources, limits: Limits) -> None:
    """Refuse, at once and in words, a fixed session that this machine could not hold even with nothing else
    running: a job that could never run must not wait for ever."""
    never = _never_fits(r, limits)
    if never is not None:
        raise InvalidRequest(never)


def _never_placed(r: Resources, limits: Limits, pick_gpus: Callable[[set[str], int], list[str] | None]) -> str | None:
    """Why this machine could never place a job of these resources, even with nothing else running (None: it
    could, once room frees)."""
    never = _never_fits(r, limits) if r.fixed and limits.host_checked else None
    if never is None and r.gpus and pick_gpus(set(), r.gpus) is None:
        never = f"Not enough GPUs on this machine for {r.gpus}, ever, even with none taken"
    return never


@dataclass(frozen=True)
class Dequeued:
    """The job taken out of the head of the queue (`Store.start_queue_head`), as it is now, with since when it
    waited; `never`: why it failed instead of starting (None: it starts)."""

    job: Session
    since: datetime
    never: str | None = None


class Store:
    def __init__(
        self,
        path: Path,
        *,
        uncounted_types: Collection[str],
        batch_types: Collection[str] = (),
        queue_types: Collection[str] = (),
    ) -> None:
        """Profile flags: `uncounted_types` never count towards the per-user limit; `batch_types` are jobs;
        `queue_types` wait in the queue when the machine has no room for them."""
        self._uncounted = tuple(sorted(uncounted_types))
        self._batch = tuple(sorted(batch_types))
        self._queue = frozenset(queue_types)
        path.parent.mkdir(parents=True, exist_ok=True)
        # Rows hold sessions' environments and the users' images: the file is the service's alone. SQLite
        # gives its -wal and -shm files the database's own mode.
        os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
        os.chmod(path, 0o600)  # a database from before this rule, 0644
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=10)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA busy_timeout=10000")
        (version,) = self._db.execute("PRAGMA user_version").fetchone()
        if version > SCHEMA_VERSION:
            raise ConfigError(
                f"{path} was written by a newer skaha-emulator (schema {version}, this one knows {SCHEMA_VERSION}); "
                "upgrade the emulator or move that state folder away"
            )
        if version == 0:
            self._db.executescript(_SCHEMA)
        for step in range(version + 1, SCHEMA_VERSION + 1) if version else ():
            # One transaction per step: a crash never leaves a half-migrated database.
            self._db.executescript(f"BEGIN; {_MIGRATIONS[step]} PRAGMA user_version={step}; COMMIT;")
        self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    @staticmethod
    def remove_files(path: Path) -> None:
        """Delete a closed store's database with its WAL files (`down --remove-sessions`)."""
        for part in (path, path.with_name(f"{path.name}-wal"), path.with_name(f"{path.name}-shm")):
            part.unlink(missing_ok=True)

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def _immediate(self) -> Iterator[sqlite3.Connection]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        else:
            self._db.execute("COMMIT")

    # --- sessions -------------------------------------------------------------------------

    def admit(
        self, session: Session, max_interactive: int, limits: Limits | None = None, *, gpus_busy: bool = False
    ) -> bool:
        """Insert `session` unless its user already has `max_interactive` active interactive sessions
        (and, with `limits`, unless a job, app or host limit would be passed).

        A job of a queueing type (the profile's `queue`) that the machine has no room for now (or no free GPU:
        `gpus_busy`), or that comes while others wait, is inserted waiting instead: `session.queued_at` set,
        its GPU devices dropped (core/queue.py starts it). A limit of its user's, or a request no empty machine
        could hold, still refuses it at once.

        Returns False when the id is already taken (the caller draws a new one).
        Raises InvalidRequest with skaha's message when the limit is reached.
        """
        with self._immediate() as db:
            if limits is not None:
                self._check_limits(db, session, limits)
                full = self._no_room(db, session.resources, limits)
                if full is None and gpus_busy:
                    full = f"Not enough GPUs free on this machine for {session.resources.gpus}"
                if self._waits(db, session, limits, lacking=full is not None):
                    session.queued_at, session.gpu_devices = session.start_time, []
                elif full is not None:
                    raise InvalidRequest(full)
            if session.type not in self._uncounted:
                (active,) = db.execute(
                    f"SELECT COUNT(*) FROM sessions WHERE user = ? "
                    f"AND type NOT IN ({','.join('?' * len(self._uncounted))}) "
                    f"AND status NOT IN ({','.join('?' * len(_UNCOUNTED_STATUSES))})",
                    (session.user, *self._uncounted, *_UNCOUNTED_STATUSES),
                ).fetchone()
                policy.check_session_limit(session.user, active, max_interactive)
            try:
                self._insert(db, session)
            except sqlite3.IntegrityError:
                return False
        return True

    def _check_limits(self, db: sqlite3.Connection, session: Session, limits: Limits) -> None:
        """The limits that refuse at once whatever the machine holds: per desktop, per user (a waiting job
        counts towards its user's), and a request no empty machine could hold."""
        live = (Status.PENDING.value, Status.RUNNING.value)
        if session.parent_id is not None:
            (apps,) = db.execute(
                "SELECT COUNT(*) FROM sessions WHERE parent_id = ? AND status IN (?, ?)", (session.parent_id, *live)
            ).fetchone()
            most = limits.max_apps_per_desktop
            if apps >= most:
                raise InvalidRequest(f"Desktop {session.parent_id} has reached the maximum of {most} desktop-apps.")
        elif session.type in self._batch:
            (jobs,) = db.execute(
                f"SELECT COUNT(*) FROM sessions WHERE user = ? AND status IN (?, ?) "
                f"AND type IN ({','.join('?' * len(self._batch))})",
                (session.user, *live, *self._batch),
            ).fetchone()
            if jobs >= limits.max_jobs:
                raise InvalidRequest(f"User {session.user} has reached the maximum of {limits.max_jobs} active jobs.")
        r = session.resources
        if limits.user_memory_gb is not None:
            # Each session counts what it may use (a flexible one its limit, which bounds its /scratch too); a
            # waiting job counts as well, so none of a user's ever starts past the cap (nor blocks the queue on it).
            (mine,) = db.execute(
                "SELECT COALESCE(SUM(ram_limit_gb), 0) FROM sessions WHERE user = ? AND status IN (?, ?, ?)",
                (session.user, *_HOLDING),
            ).fetchone()
            if mine + r.ram_limit_gb > limits.user_memory_gb + 1e-9:
                raise InvalidRequest(
                    f"User {session.user} may use at most {limits.user_memory_gb:g} GB of memory in all sessions "
                    f"on this machine ({mine:g} GB held; {r.ram_limit_gb:g} GB asked: a flexible session counts "
                    "the most it may use, its /scratch included)"
                )
        if r.fixed and limits.host_checked:
            _check_ever_fits(r, limits)

    def _no_room(self, db: sqlite3.Connection, r: Resources, limits: Limits) -> str | None:
        """Why the machine cannot hold a fixed session of these resources now, in words (None: it can). What the
        fixed sessions hold is summed; a job waiting in the queue holds nothing."""
        if not r.fixed or not limits.host_checked:
            # Flexible sessions reserve nothing: they share what is free. Across a swarm, Swarm's placement
            # decides, by reservations; a session no machine can take waits there, Pending.
            return None
        held_ram, held_cores = db.execute(
            "SELECT COALESCE(SUM(ram_request_gb), 0), COALESCE(SUM(cores_request), 0) FROM sessions "
            "WHERE fixed = 1 AND status IN (?, ?, ?) AND queued_at IS NULL",
            _HOLDING,
        ).fetchone()
        free_ram = max(0.0, limits.fixed_memory_gb - held_ram)
        if r.ram_request_gb > free_ram + 1e-9:
            return (
                f"Not enough memory on this machine for {r.ram_request_gb:g} GB: {free_ram:.1f} GB is free for "
                f"fixed sessions ({limits.fixed_memory_gb + limits.headroom_gb:.1f} GB less {held_ram:g} GB held "
                f"by running fixed sessions and {limits.headroom_gb:g} GB kept back)"
            )
        free_cores = max(0.0, limits.fixed_cores - held_cores)
        if r.cores_request > free_cores + 1e-9:
            return (
                f"Not enough cores on this machine for {r.cores_request:g}: {free_cores:g} free for fixed sessions "
                f"({limits.fixed_cores:g} less {held_cores:g} held by running fixed sessions)"
            )
        return None

    def _waits(self, db: sqlite3.Connection, session: Session, limits: Limits, *, lacking: bool) -> bool:
        """The job goes to the back of the queue: its type queues, and the machine lacks room for it, or
        others wait already (first come, first served: none overtakes them)."""
        if session.type not in self._queue or session.parent_id is not None or not limits.host_checked:
            return False
        return (
            lacking
            or db.execute(f"SELECT 1 FROM sessions WHERE {_waiting()} LIMIT 1", _WAITING_ARGS).fetchone() is not None
        )

    def _insert(self, db: sqlite3.Connection, s: Session) -> None:
        r = s.resources
        db.execute(
            "INSERT INTO sessions (id, user, type, name, image, status, cores_request, cores_limit, "
            "ram_request_gb, ram_limit_gb, gpus, fixed, start_time, expiry_time, env, cmd, args, gpu_devices, "
            "ended_at, exit_code, parent_id, app_id, fault, mounts, last_activity, queued_at) "
            f"VALUES ({','.join('?' * 26)})",
            (
                s.id,
                s.user,
                s.type,
                s.name,
                s.image,
                s.status.value,
                r.cores_request,
                r.cores_limit,
                r.ram_request_gb,
                r.ram_limit_gb,
                r.gpus,
                int(r.fixed),
                _ts(s.start_time),
                _ts(s.expiry_time),
                json.dumps(s.env),
                s.cmd,
                s.args,
                json.dumps(s.gpu_devices),
                _ts(s.ended_at),
                s.exit_code,
                s.parent_id,
                s.app_id,
                None if s.fault is None else str(s.fault),
                json.dumps([[m.source, m.target] for m in s.mounts]),
                _ts(s.last_activity),
                _ts(s.queued_at),
            ),
        )

    @staticmethod
    def _row(row: sqlite3.Row) -> Session:
        return Session(
            id=row["id"],
            user=row["user"],
            type=SessionType(row["type"]),
            name=row["name"],
            image=row["image"],
            status=Status(row["status"]),
            resources=Resources(
                cores_request=row["cores_request"],
                cores_limit=row["cores_limit"],
                ram_request_gb=row["ram_request_gb"],
                ram_limit_gb=row["ram_limit_gb"],
                gpus=row["gpus"],
                fixed=bool(row["fixed"]),
            ),
            start_time=datetime.fromisoformat(row["start_time"]),
            expiry_time=datetime.fromisoformat(row["expiry_time"]),
            env=json.loads(row["env"]),
            cmd=row["cmd"],
            args=row["args"],
            gpu_devices=json.loads(row["gpu_devices"]),
            ended_at=_dt(row["ended_at"]),
            exit_code=row["exit_code"],
            parent_id=row["parent_id"],
            app_id=row["app_id"],
            fault=None if row["fault"] is None else policy.parse_fault(row["fault"]),
            mounts=[DevMount(source, target) for source, target in json.loads(row["mounts"])],
            last_activity=_dt(row["last_activity"]),
            queued_at=_dt(row["queued_at"]),
        )

    def get(self, session_id: str) -> Session | None:
        row = self._db.execute("SELECT * FROM sessions WHERE id = ?", (session_id,)).fetchone()
        return self._row(row) if row else None

    def sessions(self, user: str | None = None) -> list[Session]:
        if user is None:
            rows = self._db.execute("SELECT * FROM sessions ORDER BY start_time, id").fetchall()
        else:
            rows = self._db.execute("SELECT * FROM sessions WHERE user = ? ORDER BY start_time, id", (user,)).fetchall()
        return [self._row(r) for r in rows]

    def apps_of(self, desktop_id: str) -> list[Session]:
        rows = self._db.execute("SELECT * FROM sessions WHERE parent_id = ? ORDER BY start_time", (desktop_id,))
        return [self._row(r) for r in rows.fetchall()]

    def gpu_devices_in_use(self) -> set[str]:
        return self._gpus_held(self._db)

    @staticmethod
    def _gpus_held(db: sqlite3.Connection) -> set[str]:
        rows = db.execute(
            "SELECT gpu_devices FROM sessions WHERE status NOT IN (?, ?)",
            (Status.SUCCEEDED.value, Status.FAILED.value),
        ).fetchall()
        return {device for (devices,) in rows for device in json.loads(devices)}

    # --- the queue of jobs waiting for room (core/queue.py) ---------------------------------------

    def queue_length(self) -> int:
        (waiting,) = self._db.execute(f"SELECT COUNT(*) FROM sessions WHERE {_waiting()}", _WAITING_ARGS).fetchone()
        return int(waiting)

    def jobs_ahead(self) -> dict[str, int]:
        """Each waiting job's id, with how many jobs (anyone's) wait ahead of it."""
        rows = self._db.execute(f"SELECT id FROM sessions WHERE {_waiting()} {_queue_order()}", _WAITING_ARGS)
        return {row["id"]: ahead for ahead, row in enumerate(rows.fetchall())}

    def start_queue_head(
        self, limits: Limits, now: datetime, pick_gpus: Callable[[set[str], int], list[str] | None]
    ) -> Dequeued | None:
        """The job at the head of the queue, taken out of it when the machine has room for it now (and
        `pick_gpus(held, count)` finds its GPUs, None: not enough free): its life starts now (its start and
        expiry times moved, its lifetime kept). None: no job waits, or the head does not fit yet, and no job
        behind it overtakes it.

        A head that this machine could never hold now, even empty (its limits changed while it waited: the
        headroom, the cores or memory it has, its GPUs), fails instead (its `queued_at` kept: it never started),
        with why: it must not hold up the queue for ever."""
        with self._immediate() as db:
            row = db.execute(f"SELECT * FROM sessions WHERE {_waiting()} {_queue_order()} LIMIT 1", _WAITING_ARGS)
            head = row.fetchone()
            if head is None:
                return None
            job = self._row(head)
            assert job.queued_at is not None
            never = _never_placed(job.resources, limits, pick_gpus)
            if never is not None:
                db.execute(
                    "UPDATE sessions SET status = ?, ended_at = ? WHERE id = ?",
                    (Status.FAILED.value, _ts(now), job.id),
                )
                return Dequeued(replace(job, status=Status.FAILED, ended_at=now), job.queued_at, never)
            if self._no_room(db, job.resources, limits) is not None:
                return None
            devices = pick_gpus(self._gpus_held(db), job.resources.gpus) if job.resources.gpus else []
            if devices is None:
                return None
            started = replace(
                job,
                queued_at=None,
                start_time=now,
                expiry_time=now + (job.expiry_time - job.start_time),
                gpu_devices=devices,
            )
            db.execute(
                "UPDATE sessions SET queued_at = NULL, start_time = ?, expiry_time = ?, gpu_devices = ? WHERE id = ?",
                (_ts(started.start_time), _ts(started.expiry_time), json.dumps(devices), job.id),
            )
        return Dequeued(started, job.queued_at)

    def tell_queue(self, now: datetime, reason: str, words: Callable[[int], str]) -> None:
        """Each waiting job's newest event says where it stands, `words(jobs ahead of it)`: one event with
        `reason`, kept current in place as the queue moves (its message and last time; its first time says
        since when it waits), written only where its words changed."""
        with self._immediate() as db:
            rows = db.execute(
                "SELECT s.id, e.id AS event, e.reason, e.message FROM sessions AS s LEFT JOIN events AS e "
                "ON e.id = (SELECT MAX(id) FROM events WHERE session_id = s.id) "
                f"WHERE {_waiting('s')} {_queue_order('s')}",
                _WAITING_ARGS,
            ).fetchall()
            for ahead, row in enumerate(rows):
                message = words(ahead)
                if row["reason"] != reason:
                    db.execute(
                        "INSERT INTO events (session_id, type, reason, message, first_time, last_time) "
                        "VALUES (?, 'Normal', ?, ?, ?, ?)",
                        (row["id"], reason, message, _ts(now), _ts(now)),
                    )
                elif row["message"] != message:
                    db.execute(
                        "UPDATE events SET message = ?, last_time = ? WHERE id = ?", (message, _ts(now), row["event"])
                    )

    def set_status(
        self, session_id: str, status: Status, *, ended_at: datetime | None = None, exit_code: int | None = None
    ) -> None:
        """Any change of status; one away from Pending or Running (`ended_at`: when) is accounted. A session
        that ended already keeps when it did (its delete later changes its status, not its end)."""
        with self._immediate() as db:
            if ended_at is not None and not status.live:
                self._account(db, session_id, ended_at)
            db.execute(
                "UPDATE sessions SET status = ?, ended_at = COALESCE(ended_at, ?), "
                "exit_code = COALESCE(?, exit_code) WHERE id = ?",
                (status.value, _ts(ended_at), exit_code, session_id),
            )

    def finish(self, session_id: str, status: Status, ended_at: datetime, exit_code: int) -> bool:
        """A live session's end (Succeeded or Failed); False when it was no longer live (a delete began)."""
        with self._immediate() as db:
            self._account(db, session_id, ended_at)
            cursor = db.execute(
                "UPDATE sessions SET status = ?, ended_at = ?, exit_code = ? WHERE id = ? AND status IN (?, ?)",
                (status.value, _ts(ended_at), exit_code, session_id, Status.PENDING.value, Status.RUNNING.value),
            )
            return cursor.rowcount == 1

    def fail_pending(self, session_id: str, ended_at: datetime) -> bool:
        """Pending -> Failed, only if still Pending (it ended, or a delete began, meanwhile)."""
        with self._immediate() as db:
            self._account(db, session_id, ended_at)
            cursor = db.execute(
                "UPDATE sessions SET status = ?, ended_at = ? WHERE id = ? AND status = ?",
                (Status.FAILED.value, _ts(ended_at), session_id, Status.PENDING.value),
            )
            return cursor.rowcount == 1

    # --- usage accounting ---------------------------------------------------------------------

    @staticmethod
    def _account(db: sqlite3.Connection, session_id: str, ended_at: datetime) -> None:
        """Keep what a live session used, as it stops being live: once (a later end of the same session, its
        delete after it failed, say, finds its row written). A job still waiting in the queue used nothing."""
        db.execute(
            "INSERT INTO usage (session_id, user, type, started, ended, cores, ram_gb, gpus) "
            "SELECT id, user, type, start_time, ?, cores_request, ram_request_gb, gpus FROM sessions "
            "WHERE id = ? AND status IN (?, ?) AND queued_at IS NULL "
            "ON CONFLICT(session_id) DO NOTHING",
            (_ts(ended_at), session_id, Status.PENDING.value, Status.RUNNING.value),
        )

    def usage_records(self, since: datetime | None = None) -> list[dict[str, Any]]:
        """What ended sessions used (ended at `since` or later): session_id, user, type, started, ended (ISO
        text), cores, ram_gb, gpus."""
        if since is None:
            rows = self._db.execute("SELECT * FROM usage ORDER BY ended, session_id").fetchall()
        else:
            rows = self._db.execute(
                "SELECT * FROM usage WHERE ended >= ? ORDER BY ended, session_id", (_ts(since),)
            ).fetchall()
        return [dict(row) for row in rows]

    def mark_running(self, session_id: str) -> bool:
        """Pending -> Running, only if the session is still Pending (a delete may have begun)."""
        cursor = self._db.execute(
            "UPDATE sessions SET status = ? WHERE id = ? AND status = ?",
            (Status.RUNNING.value, session_id, Status.PENDING.value),
        )
        return cursor.rowcount == 1

    def set_expiry(self, session_id: str, expiry: datetime) -> None:
        self._db.execute("UPDATE sessions SET expiry_time = ? WHERE id = ?", (_ts(expiry), session_id))

    def remove(self, session_id: str) -> None:
        with self._immediate() as db:
            db.execute("DELETE FROM events WHERE session_id = ?", (session_id,))
            db.execute("DELETE FROM sessions WHERE id = ?", (session_id,))

    # --- events ---------------------------------------------------------------------------

    def record_event(self, session_id: str, type_: str, reason: str, message: str, now: datetime) -> None:
        """Append an event; a repeat of the newest one only bumps its count and last time (as k8s does).

        Events of a session that no longer exists are dropped (it was deleted meanwhile).
        """
        with self._immediate() as db:
            if db.execute("SELECT 1 FROM sessions WHERE id = ?", (session_id,)).fetchone() is None:
                return
            last = db.execute(
                "SELECT id, type, reason, message FROM events WHERE session_id = ? ORDER BY id DESC LIMIT 1",
                (session_id,),
            ).fetchone()
            if last and (last["type"], last["reason"], last["message"]) == (type_, reason, message):
                db.execute("UPDATE events SET count = count + 1, last_time = ? WHERE id = ?", (_ts(now), last["id"]))
            else:
                db.execute(
                    "INSERT INTO events (session_id, type, reason, message, first_time, last_time) "
                    "VALUES (?,?,?,?,?,?)",
                    (session_id, type_, reason, message, _ts(now), _ts(now)),
                )

    def events(self, session_id: str) -> list[Event]:
        rows = self._db.execute("SELECT * FROM events WHERE session_id = ? ORDER BY id", (session_id,)).fetchall()
        return [self._event(r) for r in rows]

    def latest_events(self) -> dict[str, Event]:
        """Every session's newest event, by session id, in one query (the admin page's status column)."""
        rows = self._db.execute(
            "SELECT * FROM events WHERE id IN (SELECT MAX(id) FROM events GROUP BY session_id)"
        ).fetchall()
        return {r["session_id"]: self._event(r) for r in rows}

    @staticmethod
    def _event(r: sqlite3.Row) -> Event:
        return Event(
            session_id=r["session_id"],
            type=r["type"],
            reason=r["reason"],
            message=r["message"],
            first_time=datetime.fromisoformat(r["first_time"]),
            last_time=datetime.fromisoformat(r["last_time"]),
            count=r["count"],
        )

    # --- images pulled with credentials ---------------------------------------------------

    def mark_private(self, reference: str, image_id: str | None = None) -> None:
        """An image that comes with someone's registry credentials: launching it asks for credentials
        again. The name is marked before its pull starts (so no launch slips in between), the id after."""
        keys = [f"ref:{reference}", *([image_id] if image_id else [])]
        self._db.executemany(
            "INSERT INTO private_images (key) VALUES (?) ON CONFLICT(key) DO NOTHING", [(k,) for k in keys]
        )

    def is_private(self, reference: str, image_id: str | None = None) -> bool:
        keys = [f"ref:{reference}", *([image_id] if image_id else [])]
        found = self._db.execute(
            f"SELECT 1 FROM private_images WHERE key IN ({','.join('?' * len(keys))})", keys
        ).fetchone()
        return found is not None

    def private_image_ids(self) -> set[str]:
        return {row[0] for row in self._db.execute("SELECT key FROM private_images WHERE key NOT LIKE 'ref:%'")}

    # --- notices --------------------------------------------------------------------------------

    def set_notice(self, key: str, text: str, set_by: str, now: datetime) -> None:
        self._db.execute(
            "INSERT INTO notices (key, text, set_by, set_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT(key) DO UPDATE SET text = excluded.text, set_by = excluded.set_by, set_at = excluded.set_at",
            (key, text, set_by, _ts(now)),
        )

    def notice(self, key: str) -> tuple[str, str, datetime] | None:
        """A notice's text, who set it and when (None: there is none)."""
        row = self._db.execute("SELECT text, set_by, set_at FROM notices WHERE key = ?", (key,)).fetchone()
        return None if row is None else (row["text"], row["set_by"], datetime.fromisoformat(row["set_at"]))

    def clear_notice(self, key: str) -> bool:
        return self._db.execute("DELETE FROM notices WHERE key = ?", (key,)).rowcount == 1

    # --- last activity --------------------------------------------------------------------------

    def record_activity(self, seen: dict[str, datetime]) -> None:
        """When requests last went through the gateway to these sessions (never moves a session's back)."""
        with self._immediate() as db:
            db.executemany(
                "UPDATE sessions SET last_activity = ? WHERE id = ? AND (last_activity IS NULL OR last_activity < ?)",
                [(_ts(when), session_id, _ts(when)) for session_id, when in seen.items()],
            )
