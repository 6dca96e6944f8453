"""A full disk: launches refused in words before it is full, the API answering and the database whole
when it is full, running sessions untouched, and everything back once space is freed.

The instance keeps its state and /arc on a 256 MB tmpfs of its own (mounting one needs root, as CI has)."""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import docker
import httpx
import pytest

from tests.instance import INSTANCE, Instance, start_instance, stop_instance

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root"),
]

MIN_FREE_MB = 100
QUOTA_MB = 40  # each user's home (EMULATE_USER_HOME_QUOTA_GB)


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory, docker_client: docker.DockerClient) -> Iterator[Instance]:
    disk = tmp_path_factory.mktemp("small-disk")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256m", "tmpfs", str(disk)], check=True)
    try:
        instance = start_instance(
            disk,
            f"{INSTANCE}-disk",
            docker_client,
            settings={
                "EMULATE_MIN_FREE_GB": str(MIN_FREE_MB / 1024),
                "EMULATE_USER_HOME_QUOTA_GB": str(QUOTA_MB / 1024),
            },
        )
        try:
            yield instance
        finally:
            stop_instance(instance, docker_client)
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def _fill(folder: Path, leave_bytes: int) -> Path:
    """A file that leaves `leave_bytes` free on the disk of `folder` (0: until the disk refuses)."""
    ballast = folder / "ballast"
    chunk = b"\0" * (1 << 20)
    try:
        with open(ballast, "ab", buffering=0) as out:  # unbuffered: no write is left for the close to fail
            while os.statvfs(folder).f_bavail * os.statvfs(folder).f_frsize > leave_bytes + len(chunk):
                out.write(chunk)
            while leave_bytes == 0:
                out.write(b"\0" * 4096)
    except OSError:
        pass  # full
    return ballast


def test_a_nearly_full_disk_refuses_launches_in_words_and_a_full_one_breaks_nothing(small: Instance) -> None:
    running = small.launch()
    ballast = _fill(small.arc_dir, leave_bytes=(MIN_FREE_MB // 2) << 20)
    try:
        refused = small.http.post(
            "/session", data={"name": "more", "image": "skaha-emulator/notebook:latest", "type": "notebook"}
        )
        assert refused.status_code == 507, refused.text
        assert "the server's disk is nearly full" in refused.text and "under /arc" in refused.text
        _fill(small.arc_dir, leave_bytes=0)  # now nothing at all is left
        listed = small.http.get("/session")
        assert listed.status_code == 200 and [s["id"] for s in listed.json()] == [running]
        assert small.session(running)["status"] == "Running"
        assert small.answers(running) == 200  # the session itself is untouched
        renewed = small.http.post(f"/session/{running}", params={"action": "renew"})
        assert renewed.status_code in (200, 507), renewed.text  # a write may or may not find room; never a 500
        if renewed.status_code == 507:
            assert "disk is full" in renewed.text
        assert httpx.get(f"{small.url}/skaha/availability", timeout=10).status_code == 200
    finally:
        ballast.unlink()
    with sqlite3.connect(small.state_dir / "state.db") as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    again = small.launch("again")
    assert small.session(again)["status"] == "Running"


def test_one_users_home_cannot_fill_the_disk_everybody_shares(small: Instance) -> None:
    """A quota on each home, kept by watching it: launches refused at 90%, running sessions stopped at 100%
    with an event saying why, and launches back once files are deleted."""
    small.delete_all()
    running = small.launch("writer")
    small.exec(running, f"head -c {QUOTA_MB * 95 // 100}M /dev/zero > $HOME/big")
    refused = None
    for _ in range(40):  # the home is measured every sixth housekeeping pass (3 s here)
        refused = small.http.post(
            "/session", data={"name": "more", "image": "skaha-emulator/notebook:latest", "type": "notebook"}
        )
        if refused.status_code == 507:
            break
        small.http.delete(f"/session/{refused.text.strip()}")
        time.sleep(0.5)
    assert refused is not None and refused.status_code == 507, refused.text if refused else None
    assert "/arc/home/" in refused.text, refused.text
    assert f"of its {QUOTA_MB} MB quota" in refused.text and "delete files there" in refused.text
    assert small.session(running)["status"] == "Running"  # under 100%, what runs keeps running
    # What a session writes inside its own container (outside /arc: the engine's disk) counts too.
    small.exec(running, f"head -c {QUOTA_MB * 6 // 100 + 1}M /dev/zero > /tmp/more")
    stopped = small.wait_status(running, "Failed", timeout=60)
    assert stopped["status"] == "Failed"
    events = small.http.get(f"/session/{running}", params={"view": "events"}).text
    assert "QuotaExceeded" in events and "over its quota" in events, events
    assert re.search(r"the sessions' own containers [3-9] MB", events), events
    small.http.delete(f"/session/{running}")  # its container, and what it wrote there, go
    home = next((small.arc_dir / "home").iterdir())
    (home / "big").unlink()
    time.sleep(3.5)  # the next measurement
    again = small.launch("again")
    assert small.session(again)["status"] == "Running"
