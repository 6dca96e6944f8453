"""Headless jobs: cmd/args/env, status from the exit code, no restarts, outside the interactive limit."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.instance import Instance

pytestmark = pytest.mark.slow

IMAGE = "skaha-emulator/notebook:latest"


def test_a_job_runs_its_command_with_env_and_succeeds(fresh: Instance) -> None:
    session_id = fresh.job(cmd="/usr/bin/env", env=["GREETING=hello", "REPLICA_ID=1", "bad", "A=b=c"])
    session = fresh.wait_status(session_id, "Succeeded", timeout=60)
    assert session["connectURL"] == "not-applicable" and session["type"] == "headless"
    env = fresh.http.get(f"/session/{session_id}", params={"view": "logs"}).text.splitlines()
    assert {"GREETING=hello", "REPLICA_ID=1", f"HOME=/arc/home/{session['userid']}"} <= set(env)
    assert not any(line.startswith(("bad", "A=")) for line in env)  # skaha drops entries not of the form K=V
    v1 = httpx.get(f"{fresh.url}/skaha/v1/session/{session_id}", headers=fresh.http.headers).json()
    assert (v1["status"], v1["connectURL"]) == ("Completed", "")
    events = fresh.http.get(f"/session/{session_id}", params={"view": "events"}).text
    assert "Container exited with code 0" in events


def test_args_are_split_on_single_spaces_as_skaha_does(fresh: Instance) -> None:
    session_id = fresh.job(cmd="/bin/echo", args="one two  three")
    fresh.wait_status(session_id, "Succeeded", timeout=60)
    assert fresh.http.get(f"/session/{session_id}", params={"view": "logs"}).text == "one two  three\n"


def test_a_failing_job_fails_and_is_never_restarted(fresh: Instance) -> None:
    session_id = fresh.job(cmd="/bin/false")
    fresh.wait_status(session_id, "Failed", timeout=60)
    container = fresh.container(session_id)
    assert container.attrs["RestartCount"] == 0 and container.attrs["State"]["ExitCode"] == 1
    assert "Container exited with code 1" in fresh.http.get(f"/session/{session_id}", params={"view": "events"}).text


def test_jobs_do_not_count_towards_the_interactive_limit(fresh: Instance) -> None:
    for i in range(3):
        fresh.launch(name=f"nb{i}", wait=False)
    session_id = fresh.job(cmd="/bin/true")
    fresh.wait_status(session_id, "Succeeded", timeout=60)


def test_cli_runs_a_job_with_a_command(fresh: Instance) -> None:
    result = fresh.emulate("launch", "headless", "--image", IMAGE, "--", "echo", "hello", "world")
    session_id = result.stdout.split()[0]
    assert result.stdout.split()[1:] in (["is", "Running"], ["is", "Succeeded"])  # it may be done already
    fresh.wait_status(session_id, "Succeeded", timeout=60)
    assert fresh.emulate("logs", session_id).stdout == "hello world\n"


def test_a_print_loop_cannot_fill_the_disk_with_its_log(fresh: Instance) -> None:
    """A job printing 40 MB leaves at most its profile's log cap (10 MB a file, 3 files) on the engine's disk,
    and its last lines are still there to read."""
    # skaha splits args on spaces: the script's own are tabs.
    script = "import\tsys;sys.stdout.write(('x'*1023+'\\n')*40000+'done\\n')"
    session_id = fresh.job(cmd="python3", args=f"-c {script}")
    fresh.wait_status(session_id, "Succeeded", timeout=120)
    container = fresh.container(session_id)
    assert container.attrs["HostConfig"]["LogConfig"] == {
        "Type": "json-file",
        "Config": {"max-size": str(10 * 1024 * 1024), "max-file": "3"},
    }
    log_path = container.attrs["LogPath"]
    # The engine's own folder (root's): read it from a helper container rather than from this test's rights.
    sizes = fresh.docker.containers.run(
        "skaha-emulator/base:bookworm",
        ["sh", "-c", "du -cb /logs/*-json.log* | tail -1 | cut -f1"],
        volumes={str(Path(log_path).parent): {"bind": "/logs", "mode": "ro"}},
        remove=True,
    )
    written = 40000 * 1024 * 1.5  # what the engine would keep unrotated: each line becomes a JSON record
    assert int(sizes.decode().strip()) <= 3 * 10 * 1024 * 1024 + 65536 < written
    assert fresh.http.get(f"/session/{session_id}", params={"view": "logs"}).text.endswith("done\n")
