"""What the platform costs while people work: idle CPU, memory, and how fast `emulate ps` answers.

    python benchmarks/resources.py [--sessions 3] [--idle 30]

Starts its own instance (`bench-resources`), launches N notebooks and waits until they run, then:
- the service's and the gateway's CPU over `--idle` seconds in which nobody asks anything (from the
  engine's counters of their containers), as a fraction of one core (target: service <= 1%);
- their memory (the engine's figure without the page cache, as `docker stats` shows; target: <= 100 MB);
- `emulate ps` wall time, median of 15 runs, against `python -c pass` and a raw HTTP GET of the same
  listing (target: <= 0.2 s).
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time

import docker
from common import EMULATE, bench_instance, command_line, memory_mb, save_results

IMAGE = "skaha-emulator/notebook:latest"


def _cpu_seconds(client: docker.DockerClient, name: str) -> float:
    stats = client.api.stats(name, stream=False, one_shot=True)
    return int(stats["cpu_stats"]["cpu_usage"]["total_usage"]) / 1e9


def _wall(command: list[str], env: dict[str, str], runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(command, env=env, check=True, capture_output=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    args = command_line(__doc__, sessions=3, idle=30.0).parse_args()
    client = docker.from_env()
    service, gateway = "emulate-bench-resources-service", "emulate-bench-resources-gateway"
    results: dict[str, object] = {}
    with bench_instance("bench-resources") as instance:
        api = instance.api()
        ids = [
            api.post("/session", data={"name": f"nb{i}", "image": IMAGE, "type": "notebook"}).text.strip()
            for i in range(args.sessions)
        ]
        deadline = time.monotonic() + 300
        while any(api.get(f"/session/{i}").json()["status"] != "Running" for i in ids):
            assert time.monotonic() < deadline, "the sessions did not start"
            time.sleep(0.5)
        time.sleep(5)  # what starting them set off settles
        before = {name: _cpu_seconds(client, name) for name in (service, gateway)}
        time.sleep(args.idle)
        idle = {name: (_cpu_seconds(client, name) - before[name]) / args.idle for name in before}
        memory = {name: memory_mb(client, name) for name in (service, gateway)}
        ps = _wall([*EMULATE, "ps"], instance.env, 15)
        python = _wall([sys.executable, "-c", "pass"], instance.env, 15)
        started = time.perf_counter()
        for _ in range(15):
            api.get("/session").raise_for_status()
        http = (time.perf_counter() - started) / 15
        print(f"{args.sessions} running notebooks, {args.idle:.0f} s with nobody asking")
        print(f"  service CPU at idle   {idle[service] * 100:6.2f} % of a core   (target <= 1 %)")
        print(f"  gateway CPU at idle   {idle[gateway] * 100:6.2f} % of a core")
        print(f"  service memory        {memory[service]:6.1f} MB")
        print(f"  gateway memory        {memory[gateway]:6.1f} MB   (together target <= 100 MB)")
        print(
            f"  emulate ps            {ps:6.3f} s   (target <= 0.2 s; python -c pass {python:.3f} s,"
            f" the GET alone {http:.3f} s)"
        )
        results = {"sessions": args.sessions, "idle_cpu": idle, "memory_mb": memory, "ps_s": ps, "python_s": python}
    save_results("resources", results)


if __name__ == "__main__":
    main()
