"""The test kit's set-up of a notebook to ready against a raw `docker run` of the same image to ready.

    python benchmarks/testkit.py [--runs 5]

The kit side is what `skaha_session("skaha-emulator/notebook:latest", type="notebook")` does in a test:
the platform's preparation (home, passwd and group files), the container from the platform's spec, and
the wait until JupyterLab's /api answers through the run's own gateway. The raw side is launch.py's: the
same image and launch command by `docker run`, /api polled every 10 ms at the container's address. Runs
alternate; medians of --runs after one warm-up each. The kit's own start (network and gateway, once per
test run) is measured separately, with its first session. Target: the set-up within 1.15x of raw.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import docker
from common import ROOT, command_line, save_results
from launch import IMAGE, raw_run

from emulator.runtime.engine import engine_facts
from emulator.testkit.standalone import StandaloneKit

NETWORK = "skaha-emulator-bench-raw"


def kit_launch(kit: StandaloneKit) -> float:
    started = time.perf_counter()
    session = kit.launch(IMAGE, "notebook")
    elapsed = time.perf_counter() - started
    session.close()
    return elapsed


def main() -> None:
    args = command_line(__doc__, runs=5).parse_args()
    client = docker.from_env()
    facts = engine_facts(client)  # launch.py's raw run is the engine's own (a rootless one: a published port)
    network = client.networks.create(NETWORK, driver="bridge")
    with tempfile.TemporaryDirectory(prefix="bench-testkit-") as folder:
        root = Path(folder)
        (root / "raw-home").mkdir(mode=0o777)
        (root / "raw-home").chmod(0o777)
        scripts = ROOT / "profiles" / "skaha-system"
        try:
            started = time.perf_counter()
            kit = StandaloneKit(root / "arc").start()
            assert kit.base_url  # its network and gateway, made on first use
            kit_start = time.perf_counter() - started
            first = kit_launch(kit)
            cold = kit_start + first
            try:
                raw_run(client, facts, NETWORK, scripts, root / "raw-home")  # warm-up: the page cache, Docker's
                kit_launch(kit)
                raw, through = [], []
                for _ in range(args.runs):
                    raw.append(raw_run(client, facts, NETWORK, scripts, root / "raw-home"))
                    through.append(kit_launch(kit))
            finally:
                kit.close()
        finally:
            network.remove()
    medians = {"raw docker run": statistics.median(raw), "skaha_session set-up": statistics.median(through)}
    baseline = medians["raw docker run"]
    for name, value in medians.items():
        print(f"{name:30} {value:6.3f} s  {value / baseline:5.2f}x")
    print(f"{'kit start (network, gateway)':30} {kit_start:6.3f} s")
    print(f"{'kit start + first session':30} {cold:6.3f} s  {cold / baseline:5.2f}x")
    save_results(
        "testkit",
        {"runs": args.runs, "raw": raw, "kit": through, "kit_start": kit_start, "first": first, "medians": medians},
    )


if __name__ == "__main__":
    main()
