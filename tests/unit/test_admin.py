"""The admins' verbs (core/admin.py): which rows, in what order, each user's share, the typed confirmations,
and renew and the deletes on a real store (the removal itself is the manager's, tested with the platform)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from emulator.core import renewal
from emulator.core.admin import EVERYTHING, Admin, Hooks, Row, check_typed, choose, shares, sort_key, status_named
from emulator.core.identity import UsersSource
from emulator.core.models import GIB, Event, Resources, Session, Status, User
from emulator.core.record import SessionRecord
from emulator.core.store import Store
from emulator.errors import InvalidRequest, NotFound
from emulator.runtime.base import Usage
from emulator.settings import Settings
from tests.factories import NOW, make_session

BOSS = User("boss", 1600, 1600, admin=True)


def _row(session: Session, usage: Usage | None = None, latest: Event | None = None) -> Row:
    return Row(session, None, latest, usage, "", NOW + timedelta(hours=1))


SESSIONS = [
    make_session(id="a1", user="bob", name="zeta", status=Status.RUNNING, start_time=NOW, expiry_time=NOW),
    make_session(id="a2", user="alice", name="alpha", status=Status.PENDING, start_time=NOW + timedelta(minutes=5)),
    make_session(id="a3", user="alice", name="mid", status=Status.FAILED, start_time=NOW - timedelta(minutes=5)),
    make_session(id="a4", user="carol", name="beta", status=Status.RUNNING, last_activity=NOW, start_time=NOW),
]


def test_rows_are_chosen_by_user_and_status_and_ordered_by_any_column() -> None:
    rows = [_row(s) for s in SESSIONS]
    assert [r.session.id for r in choose(rows, "alice", None, "user", False)] == ["a2", "a3"]
    assert [r.session.id for r in choose(rows, None, Status.RUNNING, "user", False)] == ["a1", "a4"]
    assert [r.session.id for r in choose(rows, None, None, "name", False)] == ["a2", "a4", "a3", "a1"]
    assert [r.session.id for r in choose(rows, None, None, "age", True)] == ["a3", "a1", "a4", "a2"]  # oldest first
    assert [r.session.id for r in choose(rows, None, None, "activity", True)][0] == "a4"  # the one ever active
    assert choose(rows, "nobody", None, "user", False) == []


def test_age_and_time_left_never_go_below_nothing() -> None:
    row = _row(SESSIONS[0])
    assert (row.age_seconds, row.seconds_left) == (3600, 0)  # its expiry passed an hour ago


def test_sorts_and_statuses_are_named_or_refused_in_words() -> None:
    assert sort_key(None) == "user" and sort_key("ram") == "ram"
    with pytest.raises(InvalidRequest, match="unknown sort 'size': one of user, type, name"):
        sort_key("size")
    assert status_named("completed") is Status.SUCCEEDED and status_named("RUNNING") is Status.RUNNING
    assert status_named("") is None
    with pytest.raises(InvalidRequest, match="unknown status 'Sleeping': one of Pending, Running"):
        status_named("Sleeping")


def test_each_users_share_counts_what_their_running_sessions_asked_for_and_use() -> None:
    sessions = [
        *SESSIONS,
        make_session(id="a5", user="bob", status=Status.RUNNING, resources=Resources(0.5, 2, 2, 4)),
    ]
    usage = {"a1": Usage(memory_bytes=GIB, cpu_cores=0.25), "a5": Usage(memory_bytes=GIB // 2, cpu_cores=1.0)}
    found = {share.user: share for share in shares(sessions, lambda s: usage.get(s.id))}
    assert set(found) == {"alice", "bob", "carol"}  # alice's failed session is not live; her pending one is
    alice, bob, carol = found["alice"], found["bob"], found["carol"]
    assert (alice.sessions, alice.cores, alice.ram_gb, alice.cores_used) == (1, 0, 0, None)  # pending asks nothing yet
    assert (bob.sessions, bob.cores, bob.ram_gb) == (2, 2.5, 10)
    assert bob.cores_used == pytest.approx(1.25) and bob.ram_used_gb == pytest.approx(1.5)
    assert (carol.cores_used, carol.ram_used_gb) == (None, None)  # no sample yet


def test_a_bulk_delete_wants_the_name_or_the_word_typed_exactly() -> None:
    check_typed("alice", "alice", "every session of alice")
    for typed in (None, "", "Alice", "alice "):
        with pytest.raises(InvalidRequest, match="to delete every session of alice, type 'alice' to confirm"):
            check_typed("alice", typed, "every session of alice")


class _Rig:
    """The admin verbs on a real store and users file; removals are handed to a list (the manager's own removal
    runs against the engine, in the integration tests)."""

    def __init__(self, root: Path) -> None:
        users = [{"name": n, "uid": 1500 + i, "gid": 1500 + i, "token": n * 12} for i, n in enumerate(["alice", "bob"])]
        (root / "users.yaml").write_text(yaml.safe_dump({"users": users}))
        self.store = Store(root / "state.db", uncounted_types={"headless", "desktop-app"}, batch_types={"headless"})
        self.removed: list[str] = []
        runtime: Any = None  # neither renew nor the deletes' choices reach the engine
        self.record = SessionRecord(self.store, runtime, "t1", lambda: NOW)
        settings = Settings(instance="t1", state_dir=root / "s", arc_dir=root / "arc")
        hooks = Hooks(self._terminate, lambda session: None, lambda session: "")
        self.admin = Admin(settings, self.store, runtime, UsersSource(root / "users.yaml"), self.record, hooks)

    async def _terminate(self, session: Session) -> None:
        self.removed.append(session.id)
        self.store.remove(session.id)

    def add(self, **fields: Any) -> Session:
        session = make_session(**fields)
        assert self.store.admit(session, 10)
        return session


@pytest.fixture
def rig(tmp_path: Path) -> _Rig:
    return _Rig(tmp_path)


def test_renew_moves_anyones_expiry_and_says_which_admin(rig: _Rig) -> None:
    desktop = rig.add(id="desk0001", user="bob", type="desktop", status=Status.RUNNING, expiry_time=NOW)
    app = rig.add(id="desk0001-x1y", user="bob", type="desktop-app", parent_id="desk0001", app_id="x1y")
    session, expiry = rig.admin.renew(BOSS, app.id)  # an app renews with its desktop
    assert session.id == desktop.id and expiry == NOW + timedelta(days=4)
    assert {rig.admin.find(ref).expiry_time for ref in (desktop.id, app.id)} == {expiry}
    assert rig.admin.events(desktop.id)[-1].message.endswith("by admin boss")
    latest = {row.session.id: row.latest for row in rig.admin.rows()}  # every session's newest, in one query
    assert latest == {desktop.id: rig.admin.events(desktop.id)[-1], app.id: None}
    assert rig.admin.row(desktop.id).latest == latest[desktop.id]
    rig.store.set_status(desktop.id, Status.FAILED)
    with pytest.raises(InvalidRequest, match="session desk0001 is Failed: only a Pending or Running session"):
        rig.admin.renew(BOSS, desktop.id)
    with pytest.raises(NotFound, match="no session gone1234"):
        rig.admin.renew(BOSS, "gone1234")


def test_the_owners_renew_is_the_same_rule_and_never_moves_a_deadline_back(rig: _Rig) -> None:
    bob = User("bob", 1501, 1501)
    desktop = rig.add(id="desk0002", user="bob", type="desktop", status=Status.RUNNING, expiry_time=NOW)
    app = rig.add(id="desk0002-x1y", user="bob", type="desktop-app", parent_id="desk0002", app_id="x1y")
    expiry = renewal.extend(rig.store, rig.record, desktop, 3600, bob)
    assert expiry == NOW + timedelta(hours=1)
    assert {rig.admin.find(ref).expiry_time for ref in (desktop.id, app.id)} == {expiry}
    assert rig.admin.events(desktop.id)[-1].message == f"Expiry moved to {expiry.isoformat()} by bob"
    later = rig.admin.find(desktop.id)
    assert renewal.extend(rig.store, rig.record, later, 60, bob) == expiry  # a shorter lifetime keeps the later one


def test_the_deletes_take_what_they_name_and_refuse_what_is_not_there(rig: _Rig) -> None:
    for n, user in enumerate(["alice", "alice", "bob", "carol"]):  # carol left the users file, her session kept
        rig.add(id=f"sess000{n}", user=user, status=Status.RUNNING, start_time=NOW + timedelta(seconds=n))
    assert rig.admin.users() == ["alice", "bob", "carol"]
    with pytest.raises(NotFound, match="no user dave"):
        asyncio.run(rig.admin.delete_user(BOSS, "dave", "dave"))
    with pytest.raises(InvalidRequest, match="type 'alice' to confirm"):
        asyncio.run(rig.admin.delete_user(BOSS, "alice", "bob"))
    with pytest.raises(NotFound, match="no session nothere"):
        asyncio.run(rig.admin.delete(BOSS, "nothere"))
    assert rig.removed == []
    assert [s.id for s in asyncio.run(rig.admin.delete_user(BOSS, "alice", "alice"))] == ["sess0000", "sess0001"]
    assert asyncio.run(rig.admin.delete_user(BOSS, "bob", "bob"))[0].id == "sess0002"
    assert asyncio.run(rig.admin.delete_user(BOSS, "bob", "bob")) == []  # a user with nothing left: nothing to do
    with pytest.raises(InvalidRequest, match=f"type '{EVERYTHING}' to confirm"):
        asyncio.run(rig.admin.delete_all(BOSS, "all"))
    assert [s.id for s in asyncio.run(rig.admin.delete_all(BOSS, EVERYTHING))] == ["sess0003"]
    assert rig.removed == ["sess0000", "sess0001", "sess0002", "sess0003"] and rig.admin.rows() == []
