"""What reading the gateway's access log for sessions' last activity costs the service, at 200 requests/s.

    python benchmarks/activity.py [--rate 200] [--seconds 20] [--rounds 3]

Its own instance (`bench-activity`, no sign-in: the service is not on a session's request path) with one
contributed session of the small contract-test app (tests/images/contract-app, built here, removed after). A
load process sends `--rate` requests/s, paced, on one keep-alive connection, through the gateway's published port
to the session, so Caddy logs that many lines a second. Each round is a window of `--seconds` without the load,
then one with it; two figures, each the median over the rounds:

1. the service: its container's CPU (the engine's counters) in the loaded window less in the quiet one, as a
   fraction of one core: what the load costs it, which is reading the log (the gateway's own CPU is reported
   beside it, for scale);
2. the reader alone: the service's own code (gateway/access_log.py and core/activity.py, with the service's
   loop and interval, into a scratch store) run in this process over the same file, its CPU time in the loaded
   window less in the quiet one (this process does nothing else); and the visits it read against the requests
   the load sent, which must be equal. It needs to read the instance's state folder: as root, where the engine
   is rootful.

Target: <= 1% of a core for both.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import docker
from common import ROOT, BenchInstance, bench_instance, command_line, save_results

from emulator.core.activity import READ_INTERVAL_SECONDS, ActivityTracker
from emulator.core.housekeeping import run_forever
from emulator.core.models import Status
from emulator.core.store import Store
from emulator.gateway.access_log import CaddyAccessLog
from emulator.gateway.base import Visit
from tests.factories import make_session

INSTANCE = "bench-activity"
IMAGE = "bench-activity-app:latest"

# The load: `rate` GETs a second on one keep-alive connection for `seconds`; prints how many were answered 200.
LOAD = r"""
import http.client, sys, time
port, path, rate, seconds = int(sys.argv[1]), sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
answered, start = 0, time.monotonic()
for n in range(int(rate * seconds)):
    delay = start + n / rate - time.monotonic()
    if delay > 0:
        time.sleep(delay)
    connection.request("GET", path)
    response = connection.getresponse()
    response.read()
    answered += response.status == 200
print(answered, time.monotonic() - start)
"""


class Counted:
    """The access log, counting the visits read."""

    def __init__(self, log: CaddyAccessLog) -> None:
        self.log = log
        self.visits = 0

    def read(self) -> list[Visit]:
        found = self.log.read()
        self.visits += len(found)
        return found


class Nothing:
    def read(self) -> list[Visit]:
        return []


async def _read_for(tracker: ActivityTracker, seconds: float) -> None:
    """The service's reading loop (its function, its interval) for `seconds`."""
    task = asyncio.create_task(run_forever(tracker.run_once, READ_INTERVAL_SECONDS, "reading"))
    await asyncio.sleep(seconds)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await tracker.run_once()  # the last lines of the window


def _cpu(client: docker.DockerClient, name: str) -> float:
    stats = client.api.stats(name, stream=False, one_shot=True)
    return int(stats["cpu_stats"]["cpu_usage"]["total_usage"]) / 1e9


def _window(
    client: docker.DockerClient, containers: list[str], tracker: ActivityTracker, seconds: float
) -> dict[str, float]:
    """CPU seconds of each container and of this process's reader over a window of `seconds`."""
    before = {name: _cpu(client, name) for name in containers}
    process = time.process_time()
    asyncio.run(_read_for(tracker, seconds))
    used = {name: _cpu(client, name) - before[name] for name in containers}
    return {**used, "reader": time.process_time() - process}


def _rounds(
    client: docker.DockerClient, instance: BenchInstance, session_id: str, log: Counted, args: argparse.Namespace
) -> dict[str, object]:
    """Quiet and loaded windows in turn; the median of each figure over the rounds, printed and returned."""
    prefix = f"emulate-{INSTANCE}"
    containers = [f"{prefix}-service", f"{prefix}-gateway"]
    with tempfile.TemporaryDirectory() as scratch:
        store = Store(Path(scratch) / "state.db", uncounted_types=[])
        store.admit(make_session(id=session_id, status=Status.RUNNING), 10)
        reader, idle = ActivityTracker(store, log), ActivityTracker(store, Nothing())
        asyncio.run(reader.run_once())  # what the log held before (the launch's requests)
        costs: dict[str, list[float]] = {name: [] for name in [*containers, "reader"]}
        sent = read = 0
        for _ in range(args.rounds):
            quiet = _window(client, containers, idle, args.seconds)
            before = log.visits
            load = subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    LOAD,
                    str(instance.port),
                    f"/session/contrib/{session_id}/",
                    str(args.rate),
                    str(args.seconds),
                ],
                stdout=subprocess.PIPE,
                text=True,
            )
            loaded = _window(client, containers, reader, args.seconds)
            answered, took = load.communicate(timeout=args.seconds * 3)[0].split()
            asyncio.run(reader.run_once())  # the load's last lines
            sent, read = sent + int(answered), read + log.visits - before
            for name in costs:
                costs[name].append((loaded[name] - quiet[name]) / args.seconds)
        store.close()
    median = {name: statistics.median(values) for name, values in costs.items()}
    service, gateway = containers
    print(f"{args.rate:.0f} requests/s through the gateway for {args.seconds:.0f} s, {args.rounds} rounds (medians)")
    print(f"  service CPU for the load   {median[service] * 100:6.2f} % of a core   (target <= 1 %)")
    print(f"  the reader alone           {median['reader'] * 100:6.2f} % of a core   (target <= 1 %)")
    print(f"  gateway CPU for the load   {median[gateway] * 100:6.2f} % of a core   (for scale)")
    print(f"  visits read / requests     {read} / {sent}   (last round took {float(took):.1f} s)")
    assert read == sent, "the reader missed requests the gateway answered"
    return {"rate": args.rate, "seconds": args.seconds, "cpu_fraction": median, "sent": sent, "read": read}


def main() -> None:
    args = command_line(__doc__, rate=200.0, seconds=20.0, rounds=3).parse_args()
    client = docker.from_env()
    client.images.build(path=str(ROOT / "tests" / "images" / "contract-app"), tag=IMAGE, rm=True)
    try:
        with bench_instance(INSTANCE) as instance:
            api = instance.api()
            session_id = api.post("/session", data={"name": "app", "image": IMAGE, "type": "contributed"}).text.strip()
            deadline = time.monotonic() + 120
            while api.get(f"/session/{session_id}").json()["status"] != "Running":
                assert time.monotonic() < deadline, "the session did not start"
                time.sleep(0.5)
            log = Counted(CaddyAccessLog(instance.root / "state" / "gateway" / "access.log"))
            results = _rounds(client, instance, session_id, log, args)
            log.log.close()
    finally:
        client.images.remove(IMAGE, force=True)
    save_results("activity", results)


if __name__ == "__main__":
    main()
