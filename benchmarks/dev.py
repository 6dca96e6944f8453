"""`emulate dev`'s edit-run loop against the same loop by hand (`docker build`, then `docker run`).

    python benchmarks/dev.py [--runs 5]

A new notebook project (`emulate init-image notebook`), twice: one folder under `emulate dev`, one built and
run by hand. Each run saves a one-line change to the start-up configuration (jupyter_server_config.py: a
response header with a value of that run's own, so no build is a cache hit of the other side's) and times
until JupyterLab answers /api with the change:

- `emulate dev`: from the save to the new session answering through the gateway (the watcher, the build, the
  static checks, the launch beside the old session, its readiness; the old one deleted after, not counted);
- by hand: the engine's build of the folder, then launch.py's raw `docker run` of the image with skaha's
  launch command, /api polled at the container's address; the old container removed after, not counted.

Runs alternate, each 2 s after the last one's session answered (a developer's pace: the old session idle),
medians of --runs after a warm-up of each (which builds the project's slow layers once). It then times a
replacement in-process both ways, taking turns, the new session launched beside the old one and the old one
deleted first, to show which `emulate dev` should do. Target: `emulate dev` within 1.2x of the hand loop.
"""

from __future__ import annotations

import contextlib
import os
import queue
import re
import shutil
import signal
import statistics
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import docker
import httpx
from common import EMULATE, ROOT, BenchInstance, bench_instance, command_line, save_results
from launch import raw_run, wait_http

from emulator.client.http import EmulatorClient
from emulator.host.builds import extra_files
from emulator.host.dev import DevLoop, DevRequest
from emulator.runtime.endpoint import client_from_environment
from emulator.runtime.engine import EngineFacts, engine_facts
from emulator.settings import Settings, from_environment, load_settings

HEADER = "X-Bench-Change"
URL = re.compile(r"^http://\w+\.localhost:\d+/session/notebook/(\w+)/")
TAG = "skaha-emulator-bench/dev:dev"
HAND_TAG = "skaha-emulator-bench/dev-by-hand:dev"
INSTANCE = "benchdev"
SETTLE = 2.0  # seconds between a session's start and the next save (a developer's pace; not timed)


def change(project: Path, value: str) -> None:
    """Save the one-line change: the start-up configuration sets the header to `value`."""
    config = project / "jupyter_server_config.py"
    kept = [line for line in config.read_text().splitlines() if HEADER not in line]
    line = f'c.ServerApp.tornado_settings = {{"headers": {{"{HEADER}": "{value}"}}}}'
    config.write_text("\n".join([*kept, line]) + "\n")


def shows(value: str) -> Callable[[httpx.Response], bool]:
    """JupyterLab answers, with the change."""
    return lambda response: response.status_code == 200 and response.headers.get(HEADER) == value


class DevProcess:
    """`emulate dev` on a folder, the sessions whose URLs it prints read as they come."""

    def __init__(self, instance: BenchInstance, project: Path) -> None:
        env = {**instance.env, "PYTHONUNBUFFERED": "1"}
        command = [*EMULATE, "dev", str(project), "--image", TAG, "--name", "bench"]
        self.process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.sessions: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            found = URL.match(line)
            if found:
                self.sessions.put(found.group(1))

    def run(self, instance: BenchInstance, project: Path, value: str) -> float:
        """The change saved; seconds until the session that replaces the old one answers with it."""
        started = time.perf_counter()
        change(project, value)
        session_id = self.sessions.get(timeout=300)
        return wait_http(f"{instance.url}/session/notebook/{session_id}/api", started, ready=shows(value))

    def stop(self) -> None:
        self.process.send_signal(signal.SIGINT)  # Ctrl-C: its session is deleted
        self.process.wait(timeout=60)


@dataclass(frozen=True)
class ByHand:
    """The hand loop's engine, the network its containers join and the home they get (launch.py's raw run)."""

    client: docker.DockerClient
    facts: EngineFacts
    network: str
    home: Path

    def run(self, project: Path, value: str) -> float:
        """The change saved, the folder built, the image run (launch.py's raw run, timed from its start)."""
        started = time.perf_counter()
        change(project, value)
        self.client.images.build(path=str(project), tag=HAND_TAG, rm=True, forcerm=True)
        built = time.perf_counter() - started
        scripts = ROOT / "profiles" / "skaha-system"
        return built + raw_run(
            self.client, self.facts, self.network, scripts, self.home, image=HAND_TAG, ready=shows(value)
        )


class Quiet:
    """A narrator that says nothing (the in-process loop) but notes when it was given a URL (what a developer
    waits for; the old session's removal comes after), and stops the benchmark on a problem."""

    def __init__(self) -> None:
        self.told_at = 0.0

    def step(self, line: str) -> None:
        pass

    def say(self, line: str) -> None:
        pass

    def url(self, url: str) -> None:
        self.told_at = time.perf_counter()

    def problem(self, text: str) -> None:
        raise RuntimeError(text)


def replacements(instance: BenchInstance, project: Path, runs: int) -> dict[str, list[float]]:
    """A change's cycle in-process (no watcher) to its URL told, its new session launched beside the old one, or
    after deleting it: two loops on the same folder (each its own image and session), taking turns."""
    settings = Settings.model_validate(from_environment(instance.env))  # the instance's, not this process's
    api = EmulatorClient(settings.layout)
    ways = {"launched beside the old": True, "old deleted first": False}
    narrators = {name: Quiet() for name in ways}
    loops = {
        name: DevLoop(
            settings,
            api,
            client_from_environment(),
            DevRequest(project, f"{TAG}-{int(first)}", name[:3]),
            narrators[name],
            launch_first=first,
        )
        for name, first in ways.items()
    }
    found: dict[str, list[float]] = {name: [] for name in ways}
    try:
        for loop in loops.values():
            loop.cycle()
        for run in range(runs):
            for name, loop in loops.items():
                time.sleep(SETTLE)
                value = f"{name[:3]}-{run}-{time.time()}"
                started = time.perf_counter()
                change(project, value)
                loop.cycle(["jupyter_server_config.py"])
                assert loop.live is not None
                url = f"{instance.url}/session/notebook/{loop.live.session_id}/api"
                wait_http(url, started, ready=shows(value))  # it answers with the change (it did, when told)
                found[name].append(narrators[name].told_at - started)
    finally:
        for loop in loops.values():
            loop.close()
    return found


def raw_home(root: Path, facts: EngineFacts) -> Path:
    """The raw runs' home, theirs as launch.py makes it (uid 20001; on a rootless engine, its users')."""
    home = root / "raw-home"
    home.mkdir()
    if facts.keep_id or facts.rootless:
        home.chmod(0o777 if not facts.keep_id else 0o755)
    else:
        os.chown(home, 20001, 20001)
    return home


def loops(instance: BenchInstance, hand: ByHand, runs: int) -> tuple[list[float], list[float]]:
    """`emulate dev` and the hand loop, alternating, after a warm-up of each: their times."""
    ours, by_hand = instance.root / "ours" / "project", instance.root / "by-hand"
    instance.emulate("init-image", "notebook", str(ours), "--image", TAG)
    shutil.copytree(ours, by_hand)
    for name, contents in extra_files(load_settings(), by_hand).items():  # what the dev build adds, by hand
        (by_hand / name).write_text(contents)
    dev = DevProcess(instance, ours)
    try:
        dev.sessions.get(timeout=1800)  # the first build (cold: JupyterLab from PyPI) and launch
        hand.run(by_hand, "warm-up")
        dev.run(instance, ours, "warm-up")
        ours_times, hand_times = [], []
        for run in range(runs):
            time.sleep(SETTLE)
            hand_times.append(hand.run(by_hand, f"hand-{run}-{time.time()}"))
            time.sleep(SETTLE)
            ours_times.append(dev.run(instance, ours, f"dev-{run}-{time.time()}"))
    finally:
        dev.stop()
    return ours_times, hand_times


def main() -> None:
    args = command_line(__doc__, runs=5).parse_args()
    client = client_from_environment()
    facts = engine_facts(client)
    with bench_instance(INSTANCE) as instance:
        hand = ByHand(client, facts, Settings(instance=INSTANCE).network, raw_home(instance.root, facts))
        try:
            ours_times, hand_times = loops(instance, hand, args.runs)
            strategies = replacements(instance, instance.root / "ours" / "project", args.runs)
        finally:
            for tag in (TAG, f"{TAG}-0", f"{TAG}-1", HAND_TAG):  # their layers stay, the engine's build cache
                with contextlib.suppress(docker.errors.ImageNotFound):
                    client.images.remove(tag, force=True, noprune=True)
    medians = {
        "by hand: docker build + docker run": statistics.median(hand_times),
        "emulate dev: save to new session answering": statistics.median(ours_times),
        **{f"in-process cycle, {name}": statistics.median(times) for name, times in strategies.items()},
    }
    baseline = medians["by hand: docker build + docker run"]
    print(f"a one-line change to a notebook's start-up configuration, to /api answering with it, median of {args.runs}")
    for name, value in medians.items():
        print(f"  {name:50s} {value:6.3f} s   ratio {value / baseline:5.2f}")
    save_results("dev", {"runs": args.runs, "hand": hand_times, "dev": ours_times, **strategies, "medians": medians})


if __name__ == "__main__":
    main()
