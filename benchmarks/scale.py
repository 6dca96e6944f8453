"""A full room: the platform's verbs and memory with 30 running notebooks, against the same with one.

    python benchmarks/scale.py [--sessions 30] [--runs 5] [--burst 10] [--rounds 3]

Starts its own instance (`bench-scale`, on a free port) and adds users with `emulate users add`: the
holders of the running sessions (3 notebooks each, skaha's per-user limit: 10 users for 30 sessions),
one `probe` user who launches and deletes, and `--burst` users for the simultaneous launches. Every
launch goes through the API with its user's token (flexible resources, `skaha-emulator/notebook`).

1. With one running session (measured first, before the others start), then with `--sessions`:
   - `emulate ps` wall time as a holder (EMULATE_TOKEN), median of `--runs`;
   - a launch of one more notebook (probe) until the API says Running, polled every 10 ms, and its
     delete until the API answers 404, medians of `--runs` (target: each <= 1.2x the one-session figure);
   - the service's and the gateway's memory (the engine's figure without the page cache, as `docker stats`
     shows; target: together <= 100 MB at `--sessions`).
2. With `--sessions` running: `--burst` launches at the same instant (threads released by a barrier, one
   user each) until all are Running, against as many raw `docker run`s of the same image, command, user and
   mounts started together until JupyterLab's /api answers in each (as benchmarks/launch.py), both polled
   every 0.2 s; a warm-up burst first (the users' first launch makes their networks), then `--rounds`
   rounds, medians (target <= 1.3x).

Removes its instance, its raw containers (`bench-scale-raw-*`) and its files afterwards.
"""

from __future__ import annotations

import os
import shutil
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from typing import Any

import docker
import httpx
from common import ROOT, BenchInstance, bench_instance, command_line, memory_mb, save_results

INSTANCE = "bench-scale"
IMAGE = "skaha-emulator/notebook:latest"
PER_USER = 3  # skaha's limit of concurrent interactive sessions
POLL = 0.01  # one launch or delete at a time: as benchmarks/launch.py
BURST_POLL = 0.2  # twenty pollers at once must not be the load they measure
RAW_PREFIX = f"{INSTANCE}-raw-"
RAW_UID = 20001


class Bench:
    """The benchmark's instance with its users (by name) and the engine, for the raw side."""

    def __init__(self, instance: BenchInstance) -> None:
        self.instance = instance
        self.root = instance.root
        self.env = instance.env
        self.docker = docker.from_env()
        self.tokens: dict[str, str] = {}

    def emulate(self, *args: str, env: dict[str, str] | None = None) -> str:
        return self.instance.emulate(*args, env=env)

    def add_user(self, name: str) -> None:
        self.tokens[name] = self.instance.add_user(name)

    def api(self, user: str) -> httpx.Client:
        return self.instance.api(self.tokens[user], timeout=60)

    def __enter__(self) -> Bench:
        return self

    def __exit__(self, *exc: object) -> None:
        """Removes the raw containers (the instance itself goes down when its own block ends)."""
        for container in self.docker.containers.list(all=True, filters={"name": RAW_PREFIX}):
            if container.name.startswith(RAW_PREFIX):
                with suppress(docker.errors.NotFound):
                    container.remove(force=True)


def _post(api: httpx.Client, name: str) -> str:
    response = api.post("/session", data={"name": name, "image": IMAGE, "type": "notebook"})
    response.raise_for_status()
    return response.text.strip()


def _until_running(api: httpx.Client, session_id: str, poll: float, timeout: float = 300) -> float:
    """perf_counter() when the API first says Running."""
    deadline = time.monotonic() + timeout
    while (status := api.get(f"/session/{session_id}").json()["status"]) != "Running":
        if status == "Failed" or time.monotonic() > deadline:
            raise RuntimeError(api.get(f"/session/{session_id}", params={"view": "events"}).text)
        time.sleep(poll)
    return time.perf_counter()


def _delete(api: httpx.Client, session_id: str) -> None:
    api.delete(f"/session/{session_id}").raise_for_status()
    while api.get(f"/session/{session_id}").status_code != 404:
        time.sleep(POLL)


def measure(bench: Bench, holder: str, runs: int) -> dict[str, Any]:
    """`emulate ps` as a holder; a launch to Running and a delete until gone by the probe user; memory."""
    env = {**bench.env, "EMULATE_TOKEN": bench.tokens[holder]}
    ps = []
    for _ in range(runs):
        started = time.perf_counter()
        bench.emulate("ps", env=env)
        ps.append(time.perf_counter() - started)
    api = bench.api("probe")
    launches, deletes = [], []
    for _ in range(runs):
        started = time.perf_counter()
        session_id = _post(api, "probe")
        launches.append(_until_running(api, session_id, POLL) - started)
        started = time.perf_counter()
        _delete(api, session_id)
        deletes.append(time.perf_counter() - started)
    memory = {role: memory_mb(bench.docker, f"emulate-{INSTANCE}-{role}") for role in ("service", "gateway")}
    return {"ps_s": ps, "launch_s": launches, "delete_s": deletes, "memory_mb": memory}


def platform_burst(bench: Bench, users: list[str]) -> float:
    """Seconds from the barrier's release until every one of these users' launches is Running."""
    apis = [bench.api(user) for user in users]
    released: list[float] = []
    barrier = threading.Barrier(len(users), action=lambda: released.append(time.perf_counter()))

    def one(api: httpx.Client) -> tuple[str, float]:
        barrier.wait()
        session_id = _post(api, "burst")
        return session_id, _until_running(api, session_id, BURST_POLL)

    with ThreadPoolExecutor(len(users)) as pool:
        done = list(pool.map(one, apis))
    elapsed = max(at for _, at in done) - released[0]
    with ThreadPoolExecutor(len(users)) as pool:
        list(pool.map(lambda pair: _delete(pair[0], pair[1][0]), zip(apis, done, strict=True)))
    return elapsed


def raw_burst(bench: Bench, count: int) -> float:
    """`docker run` of the notebook image with skaha's launch command, `count` at once, each until its
    JupyterLab answers /api at the container's address; then they are removed."""
    network = f"emulate-{INSTANCE}"  # the instance's own network, as benchmarks/launch.py uses
    scripts = ROOT / "profiles" / "skaha-system"
    homes = []
    for i in range(count):
        home = bench.root / "raw-home" / str(i)
        shutil.rmtree(home, ignore_errors=True)
        home.mkdir(parents=True)
        os.chown(home, RAW_UID, RAW_UID)
        homes.append(home)
    released: list[float] = []
    barrier = threading.Barrier(count, action=lambda: released.append(time.perf_counter()))

    def one(i: int) -> float:
        session_id = f"raw{i:05d}"
        barrier.wait()
        container = bench.docker.containers.run(
            IMAGE,
            ["/skaha-system/start-jupyterlab.sh", session_id],
            name=f"{RAW_PREFIX}{i}",
            detach=True,
            network=network,
            user=f"{RAW_UID}:{RAW_UID}",
            environment={"HOME": "/home/bench", "JUPYTER_TOKEN": session_id},
            volumes={str(scripts): {"bind": "/skaha-system", "mode": "ro"}, str(homes[i]): {"bind": "/home/bench"}},
        )
        container.reload()
        address = container.attrs["NetworkSettings"]["Networks"][network]["IPAddress"]
        url = f"http://{address}:8888/session/notebook/{session_id}/api"
        deadline = time.monotonic() + 300
        with httpx.Client(timeout=2) as client:
            while time.monotonic() < deadline:
                with suppress(httpx.HTTPError):
                    if client.get(url).status_code == 200:
                        return time.perf_counter()
                time.sleep(BURST_POLL)
        raise TimeoutError(url)

    try:
        with ThreadPoolExecutor(count) as pool:
            answered = list(pool.map(one, range(count)))
        return max(answered) - released[0]
    finally:
        for i in range(count):
            with suppress(docker.errors.NotFound):
                bench.docker.containers.get(f"{RAW_PREFIX}{i}").remove(force=True)


def _ratio_line(label: str, one: float, many: float, unit: str, target: str) -> None:
    print(f"  {label:30s} {one:7.3f} {unit}  {many:7.3f} {unit}   ratio {many / one:5.2f}   {target}")


def main() -> None:
    args = command_line(__doc__, sessions=30, runs=5, burst=10, rounds=3).parse_args()
    results: dict[str, object] = {"args": vars(args)}
    with bench_instance(INSTANCE) as instance, Bench(instance) as bench:
        holders = [f"user{i}" for i in range(-(-args.sessions // PER_USER))]
        bursters = [f"burst{i}" for i in range(args.burst)]
        for user in [*holders, "probe", *bursters]:
            bench.add_user(user)

        first = _post(bench.api(holders[0]), "s0")
        _until_running(bench.api(holders[0]), first, 0.1)
        probe = bench.api("probe")  # warm-up: a user's first launch makes their network, a returning user's not
        warm = _post(probe, "warm")
        _until_running(probe, warm, 0.1)
        _delete(probe, warm)
        one = measure(bench, holders[0], args.runs)

        wanted = [(user, f"s{n}") for user in holders for n in range(PER_USER)][1 : args.sessions]

        def launch(job: tuple[str, str]) -> None:
            api = bench.api(job[0])
            _until_running(api, _post(api, job[1]), BURST_POLL)

        with ThreadPoolExecutor(4) as pool:
            list(pool.map(launch, wanted))
        time.sleep(5)  # what starting them set off settles
        many = measure(bench, holders[0], args.runs)

        platform_burst(bench, bursters)  # warm-up: the burst users' networks and homes
        raws, platforms = [], []
        for _ in range(args.rounds):
            raws.append(raw_burst(bench, args.burst))
            platforms.append(platform_burst(bench, bursters))

    medians = {
        phase: {key: statistics.median(found[key]) for key in ("ps_s", "launch_s", "delete_s")}
        for phase, found in (("one", one), ("many", many))
    }
    print(f"{args.sessions} running notebooks of {len(holders)} users against 1 (medians of {args.runs})")
    print(f"  {'':30s} {'1 session':>9s}  {f'{args.sessions} sessions':>11s}")
    _ratio_line("emulate ps (a holder)", medians["one"]["ps_s"], medians["many"]["ps_s"], "s", "(target <= 1.2)")
    _ratio_line("launch to Running", medians["one"]["launch_s"], medians["many"]["launch_s"], "s", "(target <= 1.2)")
    _ratio_line("delete until gone", medians["one"]["delete_s"], medians["many"]["delete_s"], "s", "(target <= 1.2)")
    memory_one, memory_many = one["memory_mb"], many["memory_mb"]
    for role in ("service", "gateway"):
        print(f"  {role + ' memory':30s} {memory_one[role]:7.1f} MB {memory_many[role]:7.1f} MB")
    total = sum(memory_many.values())
    print(f"  {'service + gateway memory':30s} {sum(memory_one.values()):7.1f} MB {total:7.1f} MB   (target <= 100 MB)")
    raw, platform = statistics.median(raws), statistics.median(platforms)
    print(
        f"{args.burst} launches at the same instant until all run, {args.sessions} already running"
        f" (median of {args.rounds})"
    )
    print(f"  raw docker run (JupyterLab answers)  {raw:7.2f} s   ratio  1.00")
    print(f"  platform (API says Running)          {platform:7.2f} s   ratio {platform / raw:5.2f}   (target <= 1.3)")
    results.update(
        {
            "one_session": one,
            "many_sessions": many,
            "medians": medians,
            "memory_total_mb": total,
            "burst_raw_s": raws,
            "burst_platform_s": platforms,
            "burst_ratio": platform / raw,
        }
    )
    save_results("scale", results)


if __name__ == "__main__":
    main()
