"""Batch jobs queue when the machine is full, as CANFAR queues them (Kueue): on a machine with room for two, ten
jobs run two at a time, in order; one is deleted while it waits; the queue is intact across a service restart;
an interactive session that does not fit still fails at once."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime

import docker
import psutil
import pytest

from emulator import labels
from emulator.core.models import GIB
from tests.factories import built_test_images
from tests.instance import INSTANCE, Instance, start_instance, stop_instance

pytestmark = pytest.mark.slow

JOBS = 10
# Each job waits for its release file in its home (the test writes it), then ends: the test decides when.
WAIT_FOR_RELEASE = "-c until\t[\t-e\t$HOME/release-$JOB\t];\tdo\tsleep\t0.1;\tdone"  # skaha splits args on spaces


@pytest.fixture(scope="module")
def room_for_two(tmp_path_factory: pytest.TempPathFactory, docker_client: docker.DockerClient) -> Iterator[Instance]:
    """An instance of its own whose machine has room for two 1 GB jobs: all of its memory but 2.5 GB is kept back
    from fixed sessions (EMULATE_HOST_HEADROOM_GB); two cores or more, as every machine the suite runs on."""
    memory_gb = psutil.virtual_memory().total / GIB  # as the service measures it
    settings = {"EMULATE_HOST_HEADROOM_GB": f"{memory_gb - 2.5:.3f}"}
    root = tmp_path_factory.mktemp("queue")
    instance = start_instance(root, f"{INSTANCE}-queue", docker_client, settings=settings)
    try:
        yield instance
    finally:
        stop_instance(instance, docker_client)


@pytest.fixture(scope="module")
def job_image(docker_client: docker.DockerClient) -> Iterator[str]:
    with built_test_images(docker_client, ("headless-job",)) as tags:
        yield tags["headless-job"]


def _events(platform: Instance, session_id: str) -> str:
    return platform.http.get(f"/session/{session_id}", params={"view": "events"}).text


def _assert_queue(platform: Instance, waiting: list[str]) -> None:
    """`waiting` are Pending, in this order, each told how many wait ahead of it, and none has a container."""
    for ahead, session_id in enumerate(waiting):
        session = platform.session(session_id)
        assert (session["status"], session.get("jobsAhead")) == ("Pending", ahead), session
        plural = "" if ahead == 1 else "s"
        assert f"waiting for resources: {ahead} job{plural} ahead" in _events(platform, session_id)
    containers = {c.labels[labels.ROW_ID] for c in platform.session_containers()}
    assert not containers & set(waiting)


def _two_at_a_time_in_order(platform: Instance, jobs: list[str]) -> None:
    """The jobs were given the machine in the order they were launched (their Scheduled events, in the order
    written: two that start in one step of the queue start their containers side by side), and their containers
    never ran more than two at once."""
    with sqlite3.connect(platform.state_dir / "state.db") as db:
        scheduled = [row[0] for row in db.execute("SELECT session_id FROM events WHERE reason = 'Scheduled'")]
    assert scheduled == jobs
    runs = []
    for session_id in jobs:
        state = platform.container(session_id).attrs["State"]
        runs.append((state["StartedAt"], state["FinishedAt"]))  # RFC 3339 in UTC: they compare as text
    for started, _ in runs:
        assert sum(1 for s, f in runs if s <= started < f) <= 2, runs


def test_jobs_wait_for_room_and_run_two_at_a_time_in_order(room_for_two: Instance, job_image: str) -> None:
    platform = room_for_two
    jobs = [
        platform.job(f"j{i}", image=job_image, ram="1", cores="1", cmd="sh", args=WAIT_FOR_RELEASE, env=[f"JOB={i}"])
        for i in range(JOBS)
    ]
    for session_id in jobs[:2]:
        platform.wait_status(session_id, "Running", timeout=60)
    _assert_queue(platform, jobs[2:])
    # A person is waiting for an interactive session: it fails at once.
    notebook = {"name": "nb", "image": "skaha-emulator/notebook:latest", "type": "notebook", "ram": "1"}
    refused = platform.http.post("/session", data=notebook)
    assert refused.status_code == 400 and refused.text.startswith("Not enough memory on this machine for 1 GB")

    deleted = jobs.pop(4)
    assert platform.http.delete(f"/session/{deleted}").status_code == 200
    platform.wait_gone(deleted)
    _assert_queue(platform, jobs[2:])  # the jobs behind it moved up
    # Below the user's 10 jobs again: a job that could never run here is refused rather than left waiting for ever.
    never = platform.http.post("/session", data={"name": "big", "image": job_image, "type": "headless", "ram": "4"})
    assert never.status_code == 400 and "could never start" in never.text
    assert "Pending (queued, 5 ahead)" in platform.emulate("ps").stdout

    platform.restart_service()
    _assert_queue(platform, jobs[2:])
    assert "Resumed" not in _events(platform, jobs[-1])  # a waiting job is no launch to resume
    restarted = datetime.now(UTC).replace(microsecond=0)

    home = platform.arc_dir / "home" / platform.session(jobs[0])["userid"]
    for i in range(JOBS):
        (home / f"release-{i}").touch()
    for session_id in jobs:
        platform.wait_status(session_id, "Succeeded", timeout=60)
    _two_at_a_time_in_order(platform, jobs)
    last = platform.session(jobs[-1])
    assert datetime.fromisoformat(last["startTime"]) >= restarted  # its life began when it started, not at launch
    assert "s in the queue" in _events(platform, jobs[-1])
    assert deleted not in platform.rows()
