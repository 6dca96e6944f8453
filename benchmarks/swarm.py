"""Sessions across a three-engine Docker Swarm against one engine, on the same machine, in the same run.

    python benchmarks/swarm.py [--runs 5] [--sessions 30]

The swarm is tests/swarm.py's: three `dockerd`s in network namespaces of their own, joined by a bridge
(needs root). Two instances of the platform: `bench-engine` on this machine's engine, `bench-swarm` with
`up --swarm` on the swarm's manager.

1. A notebook's launch to JupyterLab's /api answering through the gateway (launch.py's `platform_run`),
   alternating between the two, medians of `--runs` after a warm-up each: the ratio is what overlay
   networking and Swarm's scheduling cost.
2. On the swarm, with one running session and then with `--sessions` (flexible notebooks of 10 users, 3
   each, spread by Swarm over the three machines): `emulate ps` wall time, a launch until the API says
   Running and its delete until the API answers 404, medians of `--runs` (ratio at --sessions against 1).

Removes both instances, the swarm and their files afterwards.
"""

from __future__ import annotations

import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx
from common import EMULATE, BenchInstance, bench_instance, command_line, instance_env, save_results
from launch import IMAGE, platform_run

from tests.instance import free_port
from tests.swarm import SwarmCluster

PER_USER = 3
POLL = 0.01


def swarm_instance(cluster: SwarmCluster, root: Path) -> BenchInstance:
    port = free_port()
    env = {
        **instance_env(root, "bench-swarm", port),
        "DOCKER_HOST": cluster.manager.docker_host,
        "EMULATE_MAX_SESSIONS": str(PER_USER),
    }
    instance = BenchInstance(root=root, port=port, env=env)
    instance.emulate("up", "--no-build", "--swarm", "--host", cluster.manager.address)
    instance.token = instance.emulate("token").strip()
    return instance


def url_of(instance: BenchInstance, host: str) -> str:
    return f"http://{host}:{instance.port}"


def launch_running(api: httpx.Client) -> tuple[str, float]:
    started = time.perf_counter()
    session_id = api.post("/session", data={"name": "probe", "image": IMAGE, "type": "notebook"}).text.strip()
    while api.get(f"/session/{session_id}").json()["status"] != "Running":
        time.sleep(POLL)
    return session_id, time.perf_counter() - started


def delete_gone(api: httpx.Client, session_id: str) -> float:
    started = time.perf_counter()
    api.delete(f"/session/{session_id}")
    while api.get(f"/session/{session_id}").status_code != 404:
        time.sleep(POLL)
    return time.perf_counter() - started


def ps_seconds(instance: BenchInstance, url: str, token: str) -> float:
    env = {**instance.env, "EMULATE_URL": url, "EMULATE_TOKEN": token}
    started = time.perf_counter()
    subprocess.run([*EMULATE, "ps"], env=env, check=True, capture_output=True)
    return time.perf_counter() - started


def verbs(instance: BenchInstance, url: str, token: str, runs: int) -> dict[str, float]:
    api = httpx.Client(base_url=f"{url}/skaha/v0", headers={"Authorization": f"Bearer {token}"}, timeout=60)
    ps = [ps_seconds(instance, url, token) for _ in range(runs)]
    launches, deletes = [], []
    for _ in range(runs):
        session_id, launched = launch_running(api)
        launches.append(launched)
        deletes.append(delete_gone(api, session_id))
    return {"ps": statistics.median(ps), "launch": statistics.median(launches), "delete": statistics.median(deletes)}


def fill(instance: BenchInstance, url: str, sessions: int) -> None:
    users = [instance.add_user(f"holder{i}") for i in range((sessions - 1 + PER_USER - 1) // PER_USER)]
    ids: list[tuple[httpx.Client, str]] = []
    for n in range(sessions - 1):
        token = users[n // PER_USER]
        api = httpx.Client(base_url=f"{url}/skaha/v0", headers={"Authorization": f"Bearer {token}"}, timeout=60)
        ids.append((api, api.post("/session", data={"name": f"h{n}", "image": IMAGE, "type": "notebook"}).text))
    deadline = time.monotonic() + 900
    for api, session_id in ids:
        while api.get(f"/session/{session_id.strip()}").json()["status"] != "Running":
            assert time.monotonic() < deadline, "the room did not come up within 15 minutes"
            time.sleep(0.5)


def main() -> None:
    args = command_line(__doc__, runs=5, sessions=30).parse_args()
    # A stopped run (timeout, kill) still takes its instances and the swarm down: through the finally blocks.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    cluster = SwarmCluster().start()
    try:
        cluster.load(["skaha-emulator/service:latest", "skaha-emulator/gateway:latest"], [cluster.manager])
        cluster.load([IMAGE])
        with bench_instance("bench-engine") as engine:
            root = engine.root.parent / f"{engine.root.name}-swarm"
            root.mkdir()
            swarm = swarm_instance(cluster, root)
            try:
                swarm_url = url_of(swarm, cluster.manager.address)
                platform_run(engine.url, engine.token)  # warm-ups: the users' networks, the page cache
                platform_run(swarm_url, swarm.token)
                one, many = [], []
                for _ in range(args.runs):
                    one.append(platform_run(engine.url, engine.token)[0])
                    many.append(platform_run(swarm_url, swarm.token)[0])
                ready = {"one engine": statistics.median(one), "three-node swarm": statistics.median(many)}
                at_one = verbs(swarm, swarm_url, swarm.token, args.runs)
                fill(swarm, swarm_url, args.sessions)
                at_many = verbs(swarm, swarm_url, swarm.token, args.runs)
                spread = httpx.get(
                    f"{swarm_url}/skaha/v0/session?view=stats",
                    headers={"Authorization": f"Bearer {swarm.token}"},
                    timeout=30,
                ).json()["nodes"]
            finally:
                subprocess.run([*EMULATE, "down", "--remove-sessions"], env=swarm.env, capture_output=True)
    finally:
        cluster.close()
    base = ready["one engine"]
    print("launch to JupyterLab answering through the gateway (median):")
    for name, value in ready.items():
        print(f"  {name:20} {value:6.3f} s  {value / base:5.2f}x")
    print(f"the swarm's verbs, at 1 session and at {args.sessions} (medians):")
    for verb in ("ps", "launch", "delete"):
        ratio = at_many[verb] / at_one[verb]
        print(f"  {verb:8} {at_one[verb]:6.3f} s  {at_many[verb]:6.3f} s  {ratio:5.2f}x")
    print("sessions per machine at the end: " + ", ".join(f"{n['name']} {n['sessions']}" for n in spread))
    save_results(
        "swarm",
        {
            "runs": args.runs,
            "ready": ready,
            "one": one,
            "swarm": many,
            "at_one": at_one,
            "at_many": at_many,
            "nodes": spread,
        },
    )


if __name__ == "__main__":
    main()
