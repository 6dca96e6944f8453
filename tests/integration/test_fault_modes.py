"""Faults on request (EMULATE_FAULTS=true), each seen through the real `canfar` CLI (1.5.2) as CANFAR users see
theirs: a job that stays Pending with the scheduler's events, one whose pull fails, one the kernel's OOM killer
ends, ones that end early by themselves; each deleted without a trace. And the refusal where faults are off.

The canfar client sends no parameter of ours, so every fault here is asked for as a script would: the env entry
EMULATE_FAULT=... (`canfar create -e`). The jobs run the platform's small base image under a CANFAR name."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from emulator import labels
from emulator.host.images import BASE_IMAGE
from tests.instance import INSTANCE, Instance, start_instance, stop_instance

pytestmark = pytest.mark.slow

# canfar names images as CANFAR does (project/name:tag under images.canfar.net): ours, tagged so.
JOB = f"images.canfar.net/{INSTANCE}-faults/job:latest"
CANFAR = shutil.which("canfar", path=str(Path(sys.executable).parent)) or "canfar"
SLEEP = ["--", "sleep", "300"]  # a job that runs until a fault ends it
SCHEDULER = (
    "0/1 nodes are available: 1 Insufficient cpu, 1 Insufficient memory. "
    "preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod."
)


@pytest.fixture(scope="module")
def faulty(tmp_path_factory: pytest.TempPathFactory, docker_client: docker.DockerClient) -> Iterator[Instance]:
    """An instance of its own that emulates faults on request."""
    root = tmp_path_factory.mktemp("faults")
    instance = start_instance(root, f"{INSTANCE}-faults", docker_client, settings={"EMULATE_FAULTS": "true"})
    try:
        instance.emulate("images", "tag", BASE_IMAGE, JOB)  # as the README tells canfar users to
        yield instance
    finally:
        stop_instance(instance, docker_client)
        docker_client.images.remove(JOB)


def _environment(instance: Instance, home: Path) -> dict[str, str]:
    return {
        **os.environ,
        "HOME": str(home),  # its config file lives in ~/.canfar
        "CANFAR_URL": f"{instance.url}/skaha/v1",
        "CANFAR_TOKEN": instance.token,
        "CANFAR_CONSOLE__BANNER": "false",
        "COLUMNS": "400",  # the scheduler's message on one line of the events table
    }


def _canfar(instance: Instance, home: Path, *args: str) -> str:
    """The CLI's output. It exits 0 on most failures, so callers check what it printed and the platform's state."""
    result = subprocess.run(
        [CANFAR, *args], env=_environment(instance, home), capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, f"canfar {' '.join(args)}: {result.stdout}\n{result.stderr}"
    return result.stdout


def _canfar_at_once(instance: Instance, home: Path, commands: dict[str, tuple[str, ...]]) -> dict[str, str]:
    """Several canfar commands run side by side (the client takes a second to start): each one's output."""
    running = {
        key: subprocess.Popen(
            [CANFAR, *args], env=_environment(instance, home), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for key, args in commands.items()
    }
    printed = {}
    for key, process in running.items():
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, f"canfar {' '.join(commands[key])}: {out}\n{err}"
        printed[key] = out
    return printed


def _shown_events(printed: str) -> list[tuple[str, str, str]]:
    """What `canfar events ID...` printed, read back as (type, reason, message) rows: each id's table, whose long
    messages the CLI wraps over the lines below their row (its tables are 120 characters wide, whatever COLUMNS;
    a long word is cut anywhere, so a message is read without its spaces)."""
    rows: list[list[str]] = []
    starts: list[int] = []
    for line in printed.splitlines():
        if line.strip().startswith("Server events for"):
            starts = []  # the next table's header follows
        elif not starts and "Reason" in line:
            starts = [line.index(word) for word in ("Type", "Reason", "Message", "First-Seen")]
        elif starts and line.strip() and not line.strip().startswith("─"):
            cells = [line[start:end].strip() for start, end in zip(starts, starts[1:], strict=False)]
            if cells[0]:
                rows.append(cells)
            elif rows:
                rows[-1][2] += cells[2]
    return [(kind, reason, _squeezed(message)) for kind, reason, message in rows]


def _squeezed(text: str) -> str:
    return "".join(text.split())


def _reads_as(shown: str, message: str) -> bool:
    """Whether a message the CLI printed is `message`: where a word was too long for its line, the table cut it and
    put an ellipsis for the rest of that line (how much goes depends on the names' lengths)."""
    pattern = ".+?".join(re.escape(part) for part in shown.split("…"))
    return re.fullmatch(pattern, _squeezed(message)) is not None


def test_each_fault_is_seen_through_canfar_as_on_canfar_and_leaves_nothing_when_deleted(
    faulty: Instance, tmp_path: Path
) -> None:
    routes = faulty.route_ids()
    ended_by_itself = ["sh", "-c", "echo${IFS}started;exec${IFS}sleep${IFS}300"]  # canfar splits args on spaces
    asked = {
        "held": ("-e", "EMULATE_FAULT=pending", "headless", JOB, *SLEEP),
        "unpulled": ("-e", "EMULATE_FAULT=pull", "headless", JOB, *SLEEP),
        "greedy": ("-e", "EMULATE_FAULT=oom:1", "-e", "KEPT=yes", "headless", JOB, *SLEEP),
        "short": ("-e", "EMULATE_FAULT=end:1", "headless", JOB, "--", *ended_by_itself),
    }
    created = _canfar_at_once(faulty, tmp_path, {n: ("create", "-o", "json", "-n", n, *a) for n, a in asked.items()})
    ids = {name: json.loads(printed)[0] for name, printed in created.items()}
    # and one through the fault parameter, as curl or a script of its own sends it
    ids["broken"] = faulty.job("broken", image=JOB, cmd="sleep", args="300", fault="end:1:3")
    held, unpulled, greedy, short, broken = ids.values()
    for session_id, status in ((unpulled, "Failed"), (greedy, "Failed"), (short, "Succeeded"), (broken, "Failed")):
        faulty.wait_status(session_id, status, timeout=60)

    seen = _canfar_at_once(
        faulty,
        tmp_path,
        {
            "ps": ("ps", "-a", "-o", "json"),
            "info": ("info", held),
            "events": ("events", *ids.values()),
            "logs": ("logs", short),
        },
    )
    listed = {s["id"]: s["status"] for s in json.loads(seen["ps"])}
    assert listed == {held: "Pending", unpulled: "Failed", greedy: "Failed", short: "Completed", broken: "Failed"}
    assert "Pending" in seen["info"]
    assert "started" in seen["logs"]  # its output stays, as a job's that ended

    shown = _shown_events(seen["events"])
    started = ["Scheduled", "Started", "Running"]
    assert [reason for _, reason, _ in shown] == (
        ["FailedScheduling"]  # held: never Scheduled, never a container
        + ["Scheduled", "Pulling", "Failed", "Failed"]  # unpulled
        + [*started, "OOMKilled"]  # greedy
        + [*started, "Completed"]  # short
        + [*started, "Failed"]  # broken
    )
    limit = faulty.http.get("/context").json()["memoryGB"]["defaultLimit"]  # a flexible job's
    warnings = [
        SCHEDULER,
        f'Failed to pull image "{JOB}": the registry has no such image: check its name and tag '
        f"(manifest for {JOB} not found: manifest unknown: manifest unknown)",
        "Error: ErrImagePull",
        f"The kernel's OOM killer ended the container: it used its whole {limit:g} GB memory limit "
        "(exit code 137); ask for more RAM",
        "Container exited with code 3",
    ]
    printed = [message for kind, _, message in shown if kind == "Warning"]
    assert len(printed) == len(warnings) and all(map(_reads_as, printed, warnings)), (printed, warnings)
    assert ("Normal", "Completed", _squeezed("Container exited with code 0")) in shown
    container = faulty.container(greedy).attrs
    assert (container["State"]["ExitCode"], container["State"]["OOMKilled"]) == (137, True)  # the kernel's, for real
    assert "KEPT=yes" in container["Config"]["Env"]
    assert not any(e.startswith("EMULATE_FAULT=") for e in container["Config"]["Env"])  # read, then dropped
    made = {c.labels[labels.ROW_ID] for c in faulty.session_containers()}
    assert made == {greedy, short, broken}  # kept with their logs; none for the held job or the failed pull

    assert faulty.session(held)["status"] == "Pending"  # still, after the others ended
    _canfar(faulty, tmp_path, "delete", "-f", *ids.values())
    deadline = time.monotonic() + 30
    while faulty.rows():
        assert time.monotonic() < deadline, faulty.rows()
        time.sleep(0.2)
    assert faulty.session_containers() == []
    files = faulty.state_dir / "sessions"
    assert not (files.exists() and any(files.iterdir()))
    assert faulty.route_ids() == routes


def test_where_faults_are_off_a_launch_that_asks_for_one_is_refused_and_leaves_nothing(
    platform: Instance, tmp_path: Path
) -> None:
    before = set(platform.rows())
    refused = platform.http.post(
        "/session", data={"name": "held", "image": BASE_IMAGE, "type": "headless", "fault": "pending"}
    )
    assert refused.status_code == 400
    assert refused.text.strip() == (
        "fault=pending refused: this platform emulates no faults; start it with EMULATE_FAULTS=true "
        "(e.g. `EMULATE_FAULTS=true emulate up`) to ask for one"
    )
    result = subprocess.run(  # (refused before its image is looked at)
        [CANFAR, "create", "-n", "held", "-e", "EMULATE_FAULT=pending", "headless", JOB, *SLEEP],
        env=_environment(platform, tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1 and "Failed to create session(s)." in result.stdout + result.stderr
    assert set(platform.rows()) == before  # not launched with the entry ignored
