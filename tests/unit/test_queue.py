"""The queue of batch jobs waiting for room (core/queue.py), against a real store: who waits, in which order, what
a waiting job holds, how it starts, and what its events say."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from emulator.core.models import Limits, Resources, Session, Status
from emulator.core.policy import GpuFacts
from emulator.core.queue import QUEUED, JobQueue
from emulator.core.record import SessionRecord
from emulator.core.store import Store
from emulator.errors import ConfigError, InvalidRequest
from emulator.naming import new_session_id
from emulator.profiles import load_profiles
from emulator.session_types import SessionType
from emulator.settings import REPO_ROOT
from tests.factories import make_session

NOW = datetime(2026, 1, 1, tzinfo=UTC)
JOB_LIFETIME = timedelta(days=14)
# A machine with room for two jobs of 1 core and 2 GB (4 GB and 2 cores for fixed sessions).
ROOM_FOR_TWO = Limits(max_jobs=10, max_apps_per_desktop=2, fixed_memory_gb=4.0, fixed_cores=2.0, headroom_gb=1.0)


def _store(path: Path) -> Store:
    jobs = {SessionType.HEADLESS}
    return Store(path, uncounted_types={*jobs, SessionType.DESKTOP_APP}, batch_types=jobs, queue_types=jobs)


def _job(gb: float = 2, cores: float = 1, user: str = "alice", launched: datetime = NOW, **more: Any) -> Session:
    return make_session(
        id=new_session_id(),
        user=user,
        type="headless",
        resources=Resources(cores, cores, gb, gb, fixed=True, **more),
        start_time=launched,
        expiry_time=launched + JOB_LIFETIME,
    )


def _admitted(store: Store, session: Session, limits: Limits = ROOM_FOR_TWO, **more: Any) -> Session:
    assert store.admit(session, 3, limits, **more)
    found = store.get(session.id)
    assert found is not None
    return found


NO_GPUS = GpuFacts()


class Rig:
    """A real store and queue; the jobs the queue starts are kept, in order, with the seconds each waited."""

    def __init__(self, path: Path, gpus: GpuFacts = NO_GPUS, limits: Limits = ROOM_FOR_TWO) -> None:
        self.store = _store(path)
        self.now = NOW
        runtime: Any = object()  # a record's events never ask the engine
        self.record = SessionRecord(self.store, runtime, "emulate", lambda: self.now)
        self.started: list[tuple[str, float]] = []
        self.dropped: list[str] = []  # jobs that failed in the queue, never to start
        self.queue = JobQueue(
            self.store, self.record, gpus, limits, lambda job, waited: self._start(job, waited), self._drop
        )

    def _start(self, job: Session, waited: float) -> None:
        self.started.append((job.id, waited))

    def _drop(self, job: Session) -> None:
        self.dropped.append(job.id)

    def end(self, session_id: str) -> None:
        assert self.store.finish(session_id, Status.SUCCEEDED, self.now, 0)

    def newest_event(self, session_id: str) -> tuple[str, str]:
        events = self.store.events(session_id)
        return events[-1].reason, events[-1].message


def test_a_job_the_machine_has_no_room_for_waits_while_a_session_is_refused(tmp_path: Path) -> None:
    store = _store(tmp_path / "s.db")
    first, second = _admitted(store, _job()), _admitted(store, _job())
    assert first.queued_at is None and second.queued_at is None
    third = _admitted(store, _job())
    assert third.queued_at == NOW and third.status is Status.PENDING
    notebook = make_session(id=new_session_id(), user="bob", resources=Resources(1, 1, 2, 2, fixed=True))
    with pytest.raises(InvalidRequest, match="Not enough memory on this machine for 2 GB: 0.0 GB is free"):
        store.admit(notebook, 3, ROOM_FOR_TWO)  # a person is waiting: it fails fast, with the reason
    # A waiting job holds nothing: what a running one frees goes to whoever asks first, here a session.
    store.finish(first.id, Status.SUCCEEDED, NOW, 0)
    assert _admitted(store, notebook).queued_at is None
    assert store.queue_length() == 1


def test_jobs_wait_in_order_of_arrival_and_none_overtakes_the_head(tmp_path: Path) -> None:
    rig = Rig(tmp_path / "s.db")
    running = [_admitted(rig.store, _job()).id for _ in range(2)]
    big = _admitted(rig.store, _job(gb=4, cores=2))  # needs the whole machine
    small = [_admitted(rig.store, _job(gb=1, cores=0.5)) for _ in range(3)]  # launched in the same second
    assert all(s.queued_at is not None for s in [big, *small])
    assert rig.store.jobs_ahead() == {big.id: 0, **{s.id: i + 1 for i, s in enumerate(small)}}
    rig.end(running[0])  # room for the small ones, not for the big one: nobody starts
    assert rig.queue.advance() == [] and rig.store.queue_length() == 4
    rig.end(running[1])
    rig.now = NOW + timedelta(seconds=90)
    assert rig.queue.advance() == [big.id]
    assert rig.started == [(big.id, 90.0)]
    rig.end(big.id)
    assert rig.queue.advance() == [small[0].id, small[1].id, small[2].id]  # 1 GB each: all three fit


def test_a_job_launched_while_others_wait_waits_behind_them_even_if_it_fits(tmp_path: Path) -> None:
    store = _store(tmp_path / "s.db")
    _admitted(store, _job(gb=3))
    waiting = _admitted(store, _job(gb=2))
    assert waiting.queued_at is not None
    flexible = make_session(id=new_session_id(), type="headless", resources=Resources(1, 2, 1, 4))
    assert _admitted(store, flexible).queued_at is not None  # fits (it reserves nothing), yet comes second
    assert store.jobs_ahead() == {waiting.id: 0, flexible.id: 1}


def test_a_started_job_lives_from_its_start_and_a_deleted_waiting_one_used_nothing(tmp_path: Path) -> None:
    rig = Rig(tmp_path / "s.db")
    running = _admitted(rig.store, _job(gb=4))
    kept, dropped = _admitted(rig.store, _job()), _admitted(rig.store, _job())
    rig.store.set_status(dropped.id, Status.TERMINATING, ended_at=NOW)  # deleted while it waited
    rig.store.remove(dropped.id)
    rig.end(running.id)
    rig.now = NOW + timedelta(hours=2)
    assert rig.queue.advance() == [kept.id]
    started = rig.store.get(kept.id)
    assert started is not None and started.queued_at is None and started.status is Status.PENDING
    assert (started.start_time, started.expiry_time) == (rig.now, rig.now + JOB_LIFETIME)
    rig.now += timedelta(hours=1)
    rig.end(kept.id)
    used = {r["session_id"]: (r["started"], r["ended"]) for r in rig.store.usage_records()}
    assert used == {
        running.id: (NOW.isoformat(), NOW.isoformat()),
        kept.id: ((NOW + timedelta(hours=2)).isoformat(), (NOW + timedelta(hours=3)).isoformat()),
    }


def test_limits_of_the_user_and_requests_no_machine_could_hold_refuse_at_once(tmp_path: Path) -> None:
    store = _store(tmp_path / "s.db")
    limits = Limits(max_jobs=3, max_apps_per_desktop=2, fixed_memory_gb=4.0, fixed_cores=2.0, headroom_gb=1.0)
    for _ in range(3):
        store.admit(_job(gb=3), 3, limits)  # one runs, two wait: waiting jobs count towards the user's limit
    assert store.queue_length() == 2
    with pytest.raises(InvalidRequest, match="User alice has reached the maximum of 3 active jobs."):
        store.admit(_job(gb=1), 3, limits)
    with pytest.raises(InvalidRequest, match=r"for 8 GB, ever: fixed sessions may hold at most 4.0 GB here .* never"):
        store.admit(_job(gb=8, user="bob"), 3, limits)
    with pytest.raises(InvalidRequest, match="Not enough cores on this machine for 3, ever: it has 2"):
        store.admit(_job(gb=1, cores=3, user="bob"), 3, limits)
    capped = Limits(
        max_jobs=9, max_apps_per_desktop=2, fixed_memory_gb=4.0, fixed_cores=2.0, headroom_gb=1, user_memory_gb=5
    )
    with pytest.raises(InvalidRequest, match=r"User carol may use at most 5 GB .*\(4 GB held; 2 GB asked"):
        for _ in range(3):  # her jobs wait, and count towards her cap: the third would take her past it
            store.admit(_job(gb=2, user="carol"), 3, capped)
    assert store.queue_length() == 4


def test_a_job_waits_for_gpus_that_are_all_taken_and_gets_them_when_it_starts(tmp_path: Path) -> None:
    rig = Rig(tmp_path / "s.db", GpuFacts(("GPU-a", "GPU-b")))
    holder = _job(gb=1, gpus=1)
    holder.gpu_devices = rig.queue.place_gpus(1) or []
    assert _admitted(rig.store, holder).gpu_devices == ["GPU-a"]
    assert rig.queue.place_gpus(2) is None
    waiting = _admitted(rig.store, _job(gb=1, gpus=2), gpus_busy=True)
    assert waiting.queued_at is not None and waiting.gpu_devices == []
    assert rig.queue.advance() == []
    rig.end(holder.id)
    assert rig.queue.advance() == [waiting.id]
    started = rig.store.get(waiting.id)
    assert started is not None and started.gpu_devices == ["GPU-a", "GPU-b"]


def test_each_waiting_job_says_how_many_wait_ahead_of_it_kept_current_in_place(tmp_path: Path) -> None:
    rig = Rig(tmp_path / "s.db")
    running = [_admitted(rig.store, _job()).id for _ in range(2)]
    waiting = [_admitted(rig.store, _job()).id for _ in range(3)]
    rig.queue.tell()
    assert [rig.newest_event(w) for w in waiting] == [
        (QUEUED, "waiting for resources: 0 jobs ahead"),
        (QUEUED, "waiting for resources: 1 job ahead"),
        (QUEUED, "waiting for resources: 2 jobs ahead"),
    ]
    rig.now = NOW + timedelta(seconds=30)
    rig.store.set_status(waiting[0], Status.TERMINATING, ended_at=rig.now)  # deleted while it waits
    rig.store.remove(waiting[0])
    rig.queue.advance()
    assert rig.newest_event(waiting[2]) == (QUEUED, "waiting for resources: 1 job ahead")
    (event,) = rig.store.events(waiting[2])  # one event, moved on: first seen at launch, last told now
    assert (event.first_time, event.last_time, event.count) == (NOW, rig.now, 1)
    rig.record.event(waiting[2], "Renewed", "Expiry moved")  # another event since: the line is told anew after it
    rig.end(running[0])
    rig.queue.advance()
    assert rig.started == [(waiting[1], 30.0)]
    assert [e.reason for e in rig.store.events(waiting[2])] == [QUEUED, "Renewed", QUEUED]
    assert rig.newest_event(waiting[2]) == (QUEUED, "waiting for resources: 0 jobs ahead")


def test_a_head_the_machine_could_never_hold_now_fails_and_the_queue_moves_on(tmp_path: Path) -> None:
    rig = Rig(tmp_path / "s.db", GpuFacts(("GPU-a", "GPU-b")))
    running = _admitted(rig.store, _job(gb=4, cores=2))
    big = _admitted(rig.store, _job(gb=4))  # fits the machine it was launched on, once the running job ends
    two_gpus = _admitted(rig.store, _job(gb=1, gpus=2))
    small = _admitted(rig.store, _job(gb=1))
    rig.end(running.id)
    rig.store.close()
    # The service restarts with more memory kept back (EMULATE_HOST_HEADROOM_GB) and one GPU gone.
    smaller = Limits(max_jobs=10, max_apps_per_desktop=2, fixed_memory_gb=3.0, fixed_cores=2.0, headroom_gb=2.0)
    rig = Rig(tmp_path / "s.db", GpuFacts(("GPU-a",)), smaller)
    rig.now = NOW + timedelta(minutes=5)
    assert rig.queue.advance() == [small.id]
    assert rig.started == [(small.id, 300.0)] and rig.dropped == [big.id, two_gpus.id]
    for job, why in [
        (big, "Not enough memory on this machine for 4 GB, ever: fixed sessions may hold at most 3.0 GB here"),
        (two_gpus, "Not enough GPUs on this machine for 2, ever, even with none taken"),
    ]:
        failed = rig.store.get(job.id)
        assert failed is not None and (failed.status, failed.ended_at) == (Status.FAILED, rig.now)
        reason, message = rig.newest_event(job.id)
        assert reason == "Failed"
        assert message.startswith(f"headless job {job.id} could never start on this machine now: {why}")
    assert rig.store.queue_length() == 0
    assert [r["session_id"] for r in rig.store.usage_records()] == [running.id]  # the failed ones used nothing


def test_the_queue_is_its_rows_and_outlives_the_store_that_wrote_it(tmp_path: Path) -> None:
    rig = Rig(tmp_path / "s.db")
    _admitted(rig.store, _job(gb=4))
    waiting = [_admitted(rig.store, _job()).id for _ in range(3)]
    rig.store.close()
    again = _store(tmp_path / "s.db")
    assert again.jobs_ahead() == {w: i for i, w in enumerate(waiting)}


def test_only_a_batch_type_may_queue_and_headless_does(tmp_path: Path) -> None:
    assert load_profiles(REPO_ROOT / "profiles")["headless"].queue
    (tmp_path / "notebook.yaml").write_text(
        "type: notebook\ndescription: d\ndefault_image: x\nport: 8888\nqueue: true\n"
        'path_prefix: "/session/notebook/{session_id}/"\nconnect_url: "{base_url}/session/notebook/{session_id}/"\n'
    )
    with pytest.raises(ConfigError, match="queue: only a batch type may queue"):
        load_profiles(tmp_path)
