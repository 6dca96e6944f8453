"""Faults injected on purpose: the kernel's OOM killer, and the service killed in a burst of launches."""

from __future__ import annotations

import sqlite3
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from emulator import labels
from tests.instance import SERVICE, Instance

pytestmark = pytest.mark.slow

IMAGE = "skaha-emulator/notebook:latest"


def test_a_session_the_oom_killer_ends_is_failed_with_that_reason_and_keeps_its_logs(fresh: Instance) -> None:
    job = fresh.job("greedy", ram="1", cmd="python3", args="-c print('allocating',flush=True);x=b'x'*(3*1024**3)")
    fresh.wait_status(job, "Failed", timeout=60)
    events = fresh.http.get(f"/session/{job}", params={"view": "events"}).text
    assert "OOMKilled" in events and "1 GB memory limit" in events, events
    assert "allocating" in fresh.http.get(f"/session/{job}", params={"view": "logs"}).text
    assert fresh.session(job)["status"] == "Failed"


def test_a_kill_in_a_burst_of_launches_leaves_the_state_whole(fresh: Instance) -> None:
    service = fresh.docker.containers.get(SERVICE)
    data = {"image": IMAGE, "type": "headless", "cmd": "sleep", "args": "300"}
    first_answer = threading.Event()

    def launch(index: int) -> str | None:
        try:
            response = fresh.http.post("/session", data={**data, "name": f"burst-{index}"})
        except httpx.HTTPError:
            return None  # the service died under this one
        if response.status_code != 200:
            return None
        first_answer.set()
        return response.text.strip()

    with ThreadPoolExecutor(8) as pool:
        launches = [pool.submit(launch, i) for i in range(8)]
        # The kill lands once a launch is answered (so a kept launch is there to check), amid the rest.
        assert first_answer.wait(60), "no launch of the burst was answered"
        service.kill()  # SIGKILL: no shutdown, mid-burst
        answered = [f.result() for f in launches]
    with sqlite3.connect(fresh.state_dir / "state.db") as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    fresh.emulate("up", "--no-build")
    accepted = [session_id for session_id in answered if session_id]
    assert accepted, answered  # else every check below holds of nothing
    rows = fresh.rows()
    assert set(accepted) <= set(rows)  # every launch that was answered with an id was kept
    for session_id in rows:  # each half-made launch is either Running or cleanly Failed
        deadline = time.monotonic() + 60
        while (status := fresh.session(session_id)["status"]) not in ("Running", "Failed"):
            assert time.monotonic() < deadline, (session_id, status)
            time.sleep(0.2)
    containers = {c.labels[labels.ROW_ID] for c in fresh.session_containers()}
    running = {s for s in rows if fresh.session(s)["status"] == "Running"}
    assert running <= containers <= set(rows)  # no orphan, no Running row without its container
    with sqlite3.connect(fresh.state_dir / "state.db") as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
