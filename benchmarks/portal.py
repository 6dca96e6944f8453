"""Sign-in's costs: the gateway's check of who is asking, and the dashboard with a room of users.

    python benchmarks/portal.py [--requests 400]

1. The same notebook session, through the gateway with the check (`up --auth`) and without it (the
   service restarted without `--auth`; the session runs on): p50/p99 of sequential requests for
   JupyterLab's /api, and requests/s with 8 clients; with the check, both as a script asks (a bearer token,
   by path on the portal's host) and as a browser does (on the session's own host, with that host's visit
   cookie). Targets: p50 added <= 2 ms, throughput >= 0.6x.
2. 30 sessions of 10 users: the dashboard page of one of them, median of 20 loads. Target <= 100 ms.

Runs in its own instance (`bench-portal`, on a free port), removed afterwards.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

import httpx

IMAGE = "skaha-emulator/notebook:latest"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Bench:
    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="emulate-bench-portal-"))
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "EMULATE_INSTANCE": "bench-portal",
            "EMULATE_PORT": str(self.port),
            "EMULATE_STATE_DIR": str(self.root / "state"),
            "EMULATE_CONFIG_DIR": str(self.root / "config"),
            "EMULATE_ARC_DIR": str(self.root / "arc"),
        }

    def emulate(self, *args: str) -> str:
        result = subprocess.run(
            [sys.executable, "-m", "emulator", *args], env=self.env, capture_output=True, text=True, check=True
        )
        return result.stdout

    def user(self, name: str) -> tuple[str, str]:
        printed = self.emulate("users", "add", name)
        values = dict(line.split(": ", 1) for line in printed.splitlines() if ": " in line)
        return values["password"].strip(), values["token"].strip()

    def launch(self, token: str, name: str) -> str:
        api = httpx.Client(base_url=f"{self.url}/skaha/v0", headers={"Authorization": f"Bearer {token}"}, timeout=60)
        session_id = api.post("/session", data={"name": name, "image": IMAGE, "type": "notebook"}).text.strip()
        deadline = time.monotonic() + 300
        while api.get(f"/session/{session_id}").json()["status"] != "Running":
            if time.monotonic() > deadline:
                raise TimeoutError(session_id)
            time.sleep(0.2)
        return session_id

    def close(self) -> None:
        subprocess.run(
            [sys.executable, "-m", "emulator", "down", "--remove-sessions"], env=self.env, capture_output=True
        )
        shutil.rmtree(self.root, ignore_errors=True)


def _latencies(url: str, headers: dict[str, str], count: int) -> list[float]:
    found = []
    with httpx.Client(headers=headers, timeout=10) as client:
        for _ in range(20):
            client.get(url)  # warm connections
        for _ in range(count):
            started = time.perf_counter()
            assert client.get(url).status_code == 200
            found.append((time.perf_counter() - started) * 1000)
    return found


def _throughput(url: str, headers: dict[str, str], seconds: float = 5.0, clients: int = 8) -> float:
    def work() -> int:
        done = 0
        with httpx.Client(headers=headers, timeout=10) as client:
            end = time.perf_counter() + seconds
            while time.perf_counter() < end:
                client.get(url)
                done += 1
        return done

    with ThreadPoolExecutor(clients) as pool:
        return sum(pool.map(lambda _: work(), range(clients))) / seconds


def _visit_cookie(bench: Bench, password: str, session_id: str) -> str:
    """What a browser holds on a session's own host: signed in at the portal, through its visit ticket."""
    browser = httpx.Client(base_url=bench.url, timeout=30)
    browser.post("/science-portal/login", data={"username": "alice", "password": password})
    ticket = urlsplit(browser.get(f"/science-portal/visit?session={session_id}&next=%2F").headers["location"])
    landed = httpx.get(f"{bench.url}{ticket.path}?{ticket.query}", headers={"Host": ticket.netloc}, timeout=30)
    return f"skaha_emulator_visit={landed.cookies['skaha_emulator_visit']}"


def _p(values: list[float], q: float) -> float:
    return sorted(values)[int(q * (len(values) - 1))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=400)
    args = parser.parse_args()
    bench = Bench()
    try:
        bench.emulate("up", "--no-build", "--auth")
        password, token = bench.user("alice")
        session_id = bench.launch(token, "bench")
        url = f"{bench.url}/session/notebook/{session_id}/api"
        headers = {"Authorization": f"Bearer {token}"}
        checked = _latencies(url, headers, args.requests)
        checked_rps = _throughput(url, headers)
        cookie = _visit_cookie(bench, password, session_id)
        own_host = {"Host": f"{session_id}.localhost:{bench.port}", "Cookie": cookie}
        on_host = _latencies(url, own_host, args.requests)
        on_host_rps = _throughput(url, own_host)
        bench.emulate("up", "--no-build")  # the same session, its routes now unchecked
        deadline = time.monotonic() + 60
        while httpx.get(url, timeout=5).status_code != 200:
            assert time.monotonic() < deadline, "the gateway did not drop its check"
            time.sleep(0.2)
        open_ = _latencies(url, headers, args.requests)
        open_rps = _throughput(url, headers)
        print(f"gateway check of who is asking ({args.requests} sequential requests, JupyterLab /api)")
        sides = (
            ("without", open_, open_rps),
            ("with (token, portal's host)", checked, checked_rps),
            ("with (visit cookie, session's own host)", on_host, on_host_rps),
        )
        for label, values, rps in sides:
            p50, p99 = statistics.median(values), _p(values, 0.99)
            print(f"  {label:42} p50 {p50:6.2f} ms  p99 {p99:6.2f} ms  {rps:7.1f} req/s")
        for label, values, rps in sides[1:]:
            added = statistics.median(values) - statistics.median(open_)
            print(
                f"  {label}: added p50 {added:+.2f} ms (target <= 2), throughput {rps / open_rps:.2f}x (target >= 0.6)"
            )

        # 30 sessions of 10 users (alice has one already), then alice's dashboard.
        people = [("alice", password, token)] + [(f"user{i}", *bench.user(f"user{i}")) for i in range(1, 10)]
        wanted = [(t, f"s{i}-{n}") for i, (_, _, t) in enumerate(people) for n in range(3)][1:]
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(lambda job: bench.launch(*job), wanted))
        browser = httpx.Client(base_url=bench.url, timeout=30)
        browser.post("/science-portal/login", data={"username": "alice", "password": password})
        times = []
        for _ in range(20):
            started = time.perf_counter()
            page = browser.get("/science-portal/")
            times.append((time.perf_counter() - started) * 1000)
            assert page.status_code == 200
        print(
            f"dashboard with 30 sessions of 10 users: median {statistics.median(times):.1f} ms (target <= 100), "
            f"{len(page.content) / 1024:.1f} KB"
        )
    finally:
        bench.close()


if __name__ == "__main__":
    main()
