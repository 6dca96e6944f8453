import sqlite3
import stat
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from emulator.core.accounting import summarize
from emulator.core.models import DevMount, Fault, FaultKind, Limits, Resources, Session, Status
from emulator.core.store import Store
from emulator.errors import ConfigError, InvalidRequest
from emulator.naming import new_session_id
from emulator.session_types import SessionType
from tests.factories import make_session

UNCOUNTED = {SessionType.HEADLESS, SessionType.DESKTOP_APP}


def _store(path: Path) -> Store:
    return Store(path, uncounted_types=UNCOUNTED, batch_types={SessionType.HEADLESS})


NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _stored(store: Store, session_id: str) -> Session:
    found = store.get(session_id)
    assert found is not None, f"{session_id} is not in the store"
    return found


def _session(user: str = "alice", type_: str = "notebook") -> Session:
    return make_session(
        id=new_session_id(), user=user, type=type_, name="n", image="i", resources=Resources(1, 2, 4, 8)
    )


def test_parallel_admissions_from_separate_connections_never_exceed_the_limit(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    _store(path).close()
    results: list[str] = []

    def admit() -> None:
        store = _store(path)  # one connection each, as separate processes would have
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
    assert len(_store(path).sessions("alice")) == 3


def test_headless_and_ended_sessions_do_not_count(tmp_path: Path) -> None:
    store = _store(tmp_path / "s.db")
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
    store = _store(tmp_path / "s.db")
    failed = _session()
    store.admit(failed, 1)
    store.set_status(failed.id, Status.FAILED, ended_at=NOW)
    with pytest.raises(InvalidRequest):
        store.admit(_session(), 1)


def test_repeated_events_are_counted_not_duplicated(tmp_path: Path) -> None:
    store = _store(tmp_path / "s.db")
    session = _session()
    store.admit(session, 3)
    store.record_event(session.id, "Warning", "BackOff", "restarting", NOW)
    store.record_event(session.id, "Warning", "BackOff", "restarting", NOW.replace(hour=1))
    store.record_event(session.id, "Normal", "Ready", "up", NOW)
    events = store.events(session.id)
    assert [(e.reason, e.count) for e in events] == [("BackOff", 2), ("Ready", 1)]
    assert events[0].last_time.hour == 1


def test_events_of_removed_sessions_are_dropped(tmp_path: Path) -> None:
    store = _store(tmp_path / "s.db")
    session = _session()
    store.admit(session, 3)
    store.remove(session.id)
    store.record_event(session.id, "Normal", "Ready", "late probe", NOW)
    assert store.events(session.id) == []


def test_state_from_a_newer_emulator_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    _store(path).close()
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA user_version=99")
    with pytest.raises(ConfigError, match="written by a newer skaha-emulator"):
        _store(path)


def test_mark_running_only_moves_pending_sessions(tmp_path: Path) -> None:
    store = _store(tmp_path / "s.db")
    session = _session()
    store.admit(session, 3)
    store.set_status(session.id, Status.TERMINATING)
    assert not store.mark_running(session.id)
    assert _stored(store, session.id).status is Status.TERMINATING


def test_a_version_1_database_is_migrated_and_keeps_its_sessions(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with sqlite3.connect(path) as db:  # the schema skaha-emulator 0.1.0 first shipped
        db.executescript(
            "CREATE TABLE sessions (id TEXT PRIMARY KEY, user TEXT NOT NULL, type TEXT NOT NULL, name TEXT NOT NULL,"
            " image TEXT NOT NULL, status TEXT NOT NULL, cores_request REAL NOT NULL, cores_limit REAL NOT NULL,"
            " ram_request_gb REAL NOT NULL, ram_limit_gb REAL NOT NULL, gpus INTEGER NOT NULL DEFAULT 0,"
            " fixed INTEGER NOT NULL DEFAULT 0, start_time TEXT NOT NULL, expiry_time TEXT NOT NULL,"
            " env TEXT NOT NULL DEFAULT '[]', cmd TEXT, args TEXT, gpu_devices TEXT NOT NULL DEFAULT '[]',"
            " ready INTEGER NOT NULL DEFAULT 0, ended_at TEXT, exit_code INTEGER);"
            "CREATE TABLE events (id INTEGER PRIMARY KEY AUTOINCREMENT, session_id TEXT NOT NULL, type TEXT NOT NULL,"
            " reason TEXT NOT NULL, message TEXT NOT NULL, first_time TEXT NOT NULL, last_time TEXT NOT NULL,"
            " count INTEGER NOT NULL DEFAULT 1);"
            "INSERT INTO sessions (id, user, type, name, image, status, cores_request, cores_limit, ram_request_gb,"
            " ram_limit_gb, start_time, expiry_time) VALUES ('abcdefgh', 'alice', 'notebook', 'n', 'i', 'Running',"
            " 1, 2, 4, 8, '2026-01-01T00:00:00+00:00', '2026-01-05T00:00:00+00:00');"
            "PRAGMA user_version=1;"
        )
    store = _store(path)
    (session,) = store.sessions()
    assert (session.id, session.status, session.parent_id, session.fault) == ("abcdefgh", Status.RUNNING, None, None)
    assert store.admit(_session(), 3)


def test_a_session_keeps_the_fault_its_launch_asked_for(tmp_path: Path) -> None:
    store = _store(tmp_path / "s.db")
    faulted = make_session(id=new_session_id(), fault=Fault(FaultKind.END, 30, 2))
    plain = make_session(id=new_session_id())
    assert store.admit(faulted, 3) and store.admit(plain, 3)
    assert (_stored(store, faulted.id).fault, _stored(store, plain.id).fault) == (Fault(FaultKind.END, 30, 2), None)


FLEXIBLE = Resources(1, 2, 4, 8)
LIMITS = Limits(max_jobs=2, max_apps_per_desktop=2, fixed_memory_gb=22.0, fixed_cores=2.0, headroom_gb=1.0)


def _fixed(gb: float, cores: float = 0.5, **overrides: object) -> Session:
    return make_session(id=new_session_id(), resources=Resources(cores, cores, gb, gb, fixed=True), **overrides)


def test_fixed_sessions_never_hold_more_than_the_host_has(tmp_path: Path) -> None:
    store = _store(tmp_path / "s.db")
    assert store.admit(_fixed(20, type="headless"), 3, LIMITS)
    with pytest.raises(InvalidRequest, match=r"Not enough memory on this machine for 20 GB: 2.0 GB is free"):
        store.admit(_fixed(20, type="headless", user="bob"), 3, LIMITS)
    with pytest.raises(InvalidRequest, match="Not enough cores on this machine for 1.6: 1.5 free"):
        store.admit(_fixed(1, cores=1.6, user="carol"), 3, LIMITS)
    assert store.admit(_fixed(2, type="headless", user="bob"), 3, LIMITS)
    flexible = make_session(id=new_session_id(), user="dave", resources=Resources(1, 2, 4, 23))
    assert store.admit(flexible, 3, LIMITS)  # flexible sessions share what is free and hold nothing


def test_jobs_and_desktop_apps_have_limits_of_their_own(tmp_path: Path) -> None:
    store = _store(tmp_path / "s.db")
    for _ in range(2):
        assert store.admit(_session(type_="headless"), 3, LIMITS)
    with pytest.raises(InvalidRequest, match="User alice has reached the maximum of 2 active jobs."):
        store.admit(_session(type_="headless"), 3, LIMITS)
    desktop = _session(type_="desktop")
    store.admit(desktop, 3, LIMITS)
    for app_id in ("a01", "a02"):
        app = make_session(
            id=f"{desktop.id}-{app_id}", type="desktop-app", parent_id=desktop.id, app_id=app_id, resources=FLEXIBLE
        )
        assert store.admit(app, 3, LIMITS)
    third = make_session(
        id=f"{desktop.id}-a03", type="desktop-app", parent_id=desktop.id, app_id="a03", resources=FLEXIBLE
    )
    with pytest.raises(InvalidRequest, match=f"Desktop {desktop.id} has reached the maximum of 2 desktop-apps."):
        store.admit(third, 3, LIMITS)


def test_an_end_never_overwrites_a_delete(tmp_path: Path) -> None:
    store = _store(tmp_path / "s.db")
    session = _session()
    store.admit(session, 3)
    store.set_status(session.id, Status.TERMINATING)
    assert not store.finish(session.id, Status.SUCCEEDED, NOW, 0)
    assert _stored(store, session.id).status is Status.TERMINATING
    other = _session()
    store.admit(other, 3)
    assert store.finish(other.id, Status.FAILED, NOW, 137)
    assert _stored(store, other.id).exit_code == 137


def test_deleting_an_ended_session_keeps_when_it_ended_and_a_live_one_ends_at_its_delete(tmp_path: Path) -> None:
    store = _store(tmp_path / "s.db")
    ended, live = _session(), _session()
    assert store.admit(ended, 3) and store.admit(live, 3)
    assert store.finish(ended.id, Status.FAILED, NOW, 1)
    deleted = NOW + timedelta(hours=5)
    for session in (ended, live):
        store.set_status(session.id, Status.TERMINATING, ended_at=deleted)  # what a removal passes
    assert _stored(store, ended.id).ended_at == NOW
    assert _stored(store, live.id).ended_at == deleted


def test_one_user_may_be_kept_from_holding_the_whole_machine(tmp_path: Path) -> None:
    store = _store(tmp_path / "s.db")
    capped = Limits(
        max_jobs=9, max_apps_per_desktop=9, fixed_memory_gb=22, fixed_cores=8, headroom_gb=1, user_memory_gb=8
    )
    assert store.admit(_fixed(6), 3, capped)
    with pytest.raises(
        InvalidRequest, match=r"User alice may use at most 8 GB of memory in all sessions .*\(6 GB held; 4 GB"
    ):
        store.admit(_fixed(4), 3, capped)
    assert store.admit(_fixed(4, user="bob"), 3, capped)
    # A flexible session counts the most it may use (its /scratch is a tmpfs within that), not what it reserves.
    flexible = make_session(id=new_session_id(), user="bob", resources=Resources(0.5, 2, 1, 6))
    with pytest.raises(InvalidRequest, match=r"\(4 GB held; 6 GB asked: a flexible session counts the most"):
        store.admit(flexible, 3, capped)
    assert store.admit(make_session(id=new_session_id(), user="bob", resources=Resources(0.5, 2, 1, 4)), 3, capped)


def test_the_database_and_its_journal_are_the_services_alone(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    path.touch(mode=0o644)  # a database from before the rule
    store = Store(path, uncounted_types=())
    store.admit(make_session(), max_interactive=3)
    for file in (path, path.with_name("state.db-wal"), path.with_name("state.db-shm")):
        assert stat.S_IMODE(file.stat().st_mode) == 0o600, file
    store.close()


def test_a_sessions_host_folders_are_kept_with_it_and_shown_as_the_emulators_own(tmp_path: Path) -> None:
    from emulator.api import views
    from emulator.core.contract import build_spec
    from emulator.profiles import load_profiles
    from emulator.settings import REPO_ROOT, Settings
    from tests.factories import USER

    store = _store(tmp_path / "s.db")
    mounted = make_session(mounts=[DevMount("/home/alice/project/notebooks", "/opt/notebooks")])
    assert store.admit(mounted, 3)
    stored = _stored(store, mounted.id)
    assert stored.mounts == mounted.mounts
    spec = build_spec(load_profiles(REPO_ROOT / "profiles")["notebook"], stored, USER, Settings(arc_dir=tmp_path))
    bound = [m for m in spec.mounts if m.target == "/opt/notebooks"]
    assert [(m.source, m.read_only) for m in bound] == [("/home/alice/project/notebooks", False)]
    shown = views.session_json(stored, USER, "", None, "v1")
    assert shown["mounts"] == ["/home/alice/project/notebooks:/opt/notebooks"]
    assert "mounts" not in views.session_json(make_session(), USER, "", None, "v1")  # skaha's JSON otherwise


def test_a_session_is_accounted_once_as_it_stops_being_live_and_kept_after_its_row_goes(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    store = _store(path)
    session = _fixed(4, cores=2, start_time=NOW)
    assert store.admit(session, 3) and store.mark_running(session.id)
    ended = NOW + timedelta(hours=3)
    assert store.finish(session.id, Status.FAILED, ended, 1)
    store.set_status(session.id, Status.TERMINATING, ended_at=ended + timedelta(hours=5))  # its delete, later
    store.remove(session.id)
    store.close()
    (record,) = _store(path).usage_records()  # across a restart of the service
    assert (record["session_id"], record["user"], record["cores"], record["ram_gb"]) == (session.id, "alice", 2, 4)
    assert (record["started"], record["ended"]) == (NOW.isoformat(), ended.isoformat())
    (line,) = summarize(_store(path).usage_records())
    assert (line.sessions, line.session_hours, line.core_hours) == (1, 3.0, 6.0)
    assert summarize(_store(path).usage_records(since=ended + timedelta(seconds=1))) == []
    (clipped,) = summarize(_store(path).usage_records(), since=NOW + timedelta(hours=2))
    assert (clipped.session_hours, clipped.core_hours) == (1.0, 2.0)


def test_a_delete_of_a_live_session_accounts_it_and_a_queued_job_used_nothing(tmp_path: Path) -> None:
    store = _store(tmp_path / "s.db")
    deleted = _fixed(2, start_time=NOW)
    queued = _fixed(2, type="headless", start_time=NOW, queued_at=NOW)
    assert store.admit(deleted, 3) and store.admit(queued, 3)
    for session in (deleted, queued):
        store.set_status(session.id, Status.TERMINATING, ended_at=NOW + timedelta(minutes=30))
        store.remove(session.id)
    assert [r["session_id"] for r in store.usage_records()] == [deleted.id]


def test_activity_only_moves_forward_and_notices_are_kept_and_cleared(tmp_path: Path) -> None:
    store = _store(tmp_path / "s.db")
    session = _fixed(2)
    assert store.admit(session, 3)
    later = NOW + timedelta(minutes=5)
    store.record_activity({session.id: later, "nosuchid": later})
    store.record_activity({session.id: NOW})
    assert _stored(store, session.id).last_activity == later
    store.set_notice("broadcast", "We restart at 14:00", "boss", NOW)
    store.set_notice("broadcast", "We restart at 15:00", "tutor", later)
    assert store.notice("broadcast") == ("We restart at 15:00", "tutor", later)
    assert store.clear_notice("broadcast") and store.notice("broadcast") is None and not store.clear_notice("broadcast")
