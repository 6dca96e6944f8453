import sqlite3
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest

from emulator.core.models import Resources, Session, Status
from emulator.core.store import Store
from emulator.errors import ConfigError, InvalidRequest
from emulator.naming import new_session_id

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _session(user: str = "alice", type_: str = "notebook") -> Session:
    return Session(
        id=new_session_id(),
        user=user,
        type=type_,
        name="n",
        image="i",
        status=Status.PENDING,
        resources=Resources(1, 2, 4, 8),
        start_time=NOW,
        expiry_time=NOW,
    )


def test_parallel_admissions_from_separate_connections_never_exceed_the_limit(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    Store(path).close()
    results: list[str] = []

    def admit() -> None:
        store = Store(path)  # one connection each, as separate processes would have
        try:
            store.admit(_session(), 3)
            results.append("ok")
        except InvalidRequest as exc:
            results.append(exc.message)
        finally:
            store.close()

    threads = [threading.Thread(target=admit) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count("ok") == 3
    assert results.count("User alice has reached the maximum of 3 active sessions.") == 7
    assert len(Store(path).sessions("alice")) == 3


def test_headless_and_ended_sessions_do_not_count(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    for _ in range(5):
        assert store.admit(_session(type_="headless"), 1)
    done = _session()
    store.admit(done, 1)
    store.set_status(done.id, Status.SUCCEEDED, ended_at=NOW)
    assert store.admit(_session(), 1)
    with pytest.raises(InvalidRequest):
        store.admit(_session(), 1)
    assert store.admit(_session(user="bob"), 1)


def test_failed_sessions_still_count_as_in_skaha_v0(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    failed = _session()
    store.admit(failed, 1)
    store.set_status(failed.id, Status.FAILED, ended_at=NOW)
    with pytest.raises(InvalidRequest):
        store.admit(_session(), 1)


def test_repeated_events_are_counted_not_duplicated(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    session = _session()
    store.admit(session, 3)
    store.record_event(session.id, "Warning", "BackOff", "restarting", NOW)
    store.record_event(session.id, "Warning", "BackOff", "restarting", NOW.replace(hour=1))
    store.record_event(session.id, "Normal", "Ready", "up", NOW)
    events = store.events(session.id)
    assert [(e.reason, e.count) for e in events] == [("BackOff", 2), ("Ready", 1)]
    assert events[0].last_time.hour == 1


def test_events_of_removed_sessions_are_dropped(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    session = _session()
    store.admit(session, 3)
    store.remove(session.id)
    store.record_event(session.id, "Normal", "Ready", "late probe", NOW)
    assert store.events(session.id) == []


def test_state_from_a_newer_emulator_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    Store(path).close()
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA user_version=99")
    with pytest.raises(ConfigError, match="written by a newer skaha-emulator"):
        Store(path)


def test_mark_running_only_moves_pending_sessions(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    session = _session()
    store.admit(session, 3)
    store.set_status(session.id, Status.TERMINATING)
    assert not store.mark_running(session.id)
    assert store.get(session.id).status is Status.TERMINATING  # type: ignore[union-attr]
