"""The light verbs' cost: `emulate ps` against `docker ps`, each run as a person types it, in the same run.

    python benchmarks/cli.py [--runs 30] [--sessions 3]

The platform runs in an instance of its own (`clibench`, a free port) with a few headless sessions, so
`ps` has rows to fetch and print; both commands print to a pipe. Each run is a fresh process: the
interpreter's start, the imports, the request and the table. Prints medians and their ratio; the
target is `emulate ps` at 0.1 s or less.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

from common import bench_instance, command_line, save_results

EMULATE = str(Path(sys.executable).with_name("emulate"))  # the installed command, as people run it
TARGET_SECONDS = 0.1


def _timed(command: list[str], env: dict[str, str], runs: int) -> list[float]:
    subprocess.run(command, env=env, check=True, capture_output=True)  # warm the page cache first
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(command, env=env, check=True, capture_output=True)
        times.append(time.perf_counter() - started)
    return times


def main() -> None:
    args = command_line(__doc__, runs=30, sessions=3).parse_args()
    with bench_instance("clibench") as instance:
        for number in range(args.sessions):
            instance.emulate(
                "launch", "headless", "--name", f"sleeper{number}", "--image", "skaha-emulator/notebook:latest",
                "--", "sleep", "600",
            )  # fmt: skip
        listed = instance.emulate("ps")
        assert listed.count("sleeper") == args.sessions, listed
        emulate_ps = _timed([EMULATE, "ps"], instance.env, args.runs)
        docker_ps = _timed(["docker", "ps"], instance.env, args.runs)
    ours, theirs = statistics.median(emulate_ps), statistics.median(docker_ps)
    print(f"emulate ps  median {ours * 1000:6.1f} ms  (target <= {TARGET_SECONDS * 1000:.0f} ms)")
    print(f"docker ps   median {theirs * 1000:6.1f} ms")
    print(f"ratio emulate ps / docker ps: {ours / theirs:.2f}x")
    save_results("cli", {"emulate_ps": emulate_ps, "docker_ps": docker_ps, "ratio": ours / theirs})
    if ours > TARGET_SECONDS:
        sys.exit(f"emulate ps took {ours * 1000:.0f} ms, over the {TARGET_SECONDS * 1000:.0f} ms target")


if __name__ == "__main__":
    main()
