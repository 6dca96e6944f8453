"""The admin page with a room in it: /science-portal/admin with 60 sessions of 20 users, against the pages and
lists the same service serves beside it, in the same run.

    python benchmarks/admin_page.py [--users 20] [--per-user 3] [--loads 20]

Starts its own instance (`bench-admin`, on a free port), adds `--users` users and an admin (`boss`) with
`emulate users add`, and launches `--per-user` sessions for each through the API with their own tokens: real
containers, headless jobs that sleep (`skaha-emulator/notebook`'s `sleep`: no JupyterLab, so 60 of them fit a
2-core machine), all Running before anything is timed. The page reads the store, the users file and the usage
sampler's figures of those containers, exactly as with any other type; no row is written behind the service's
back (it would fail a Running row without a container within a housekeeping pass).

Then, signed in as a browser is (the portal's cookie, the API token given as the password), each page is loaded
five times to warm up and then `--loads` times, one after another, timed from request to last byte:
- the admin page, all sessions (target: median <= 100 ms);
- its polled fragment and the admin API's JSON of every session, for what the rows cost alone;
- baselines: one user's dashboard (the page the room's users load), and skaha's `GET /session?view=all` (every
  session, the public fields only).
Prints medians and the admin page's ratio to the dashboard; writes benchmarks/results/admin_page.json.
Removes its instance and its files afterwards.
"""

from __future__ import annotations

import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
from common import BenchInstance, bench_instance, command_line, save_results

IMAGE = "skaha-emulator/notebook:latest"
TARGET_MS = 100.0
WARM_UP = 5


def _launch_all(instance: BenchInstance, tokens: dict[str, str], per_user: int) -> list[str]:
    """`per_user` sleeping jobs for each user (4 launches at a time), once all of them are Running; their ids."""

    def launch(job: tuple[str, int]) -> str:
        name, number = job
        with instance.api(tokens[name], timeout=60) as api:
            data = {"name": f"{name}-job{number}", "image": IMAGE, "type": "headless", "cmd": "sleep", "args": "3600"}
            answer = api.post("/session", data=data)
            answer.raise_for_status()
            return answer.text.strip()

    with ThreadPoolExecutor(4) as pool:
        ids = list(pool.map(launch, [(name, n) for name in tokens for n in range(per_user)]))
    with instance.api() as api:
        deadline = time.monotonic() + 600
        while True:
            statuses = [row["status"] for row in api.get("/session", params={"view": "all"}).json()]
            if statuses.count("Running") >= len(ids):
                return ids
            if "Failed" in statuses or time.monotonic() > deadline:
                sys.exit(f"the sessions did not all start: {sorted(statuses)}")
            time.sleep(0.5)


def _signed_in(instance: BenchInstance, name: str, token: str) -> httpx.Client:
    browser = httpx.Client(base_url=instance.url, timeout=30)
    answer = browser.post("/science-portal/login", data={"username": name, "password": token})
    assert answer.status_code == 303, answer.text
    return browser


def _timed(client: httpx.Client, path: str, loads: int, **params: str) -> tuple[list[float], int]:
    """Milliseconds of each of `loads` loads of `path` after a warm-up, and the size of the last answer."""
    for _ in range(WARM_UP):
        client.get(path, params=params).raise_for_status()
    times = []
    for _ in range(loads):
        started = time.perf_counter()
        answer = client.get(path, params=params)
        times.append((time.perf_counter() - started) * 1000)
        answer.raise_for_status()
    return times, len(answer.content)


def main() -> None:
    args = command_line(__doc__, users=20, per_user=3, loads=20).parse_args()
    with bench_instance("bench-admin") as instance:
        tokens = {f"user{n:02d}": instance.add_user(f"user{n:02d}") for n in range(args.users)}
        printed = instance.emulate("users", "add", "boss", "--admin")
        boss_token = dict(line.split(":", 1) for line in printed.splitlines() if ":" in line)["token"].strip()
        ids = _launch_all(instance, tokens, args.per_user)
        admin = _signed_in(instance, "boss", boss_token)
        page = admin.get("/science-portal/admin").text
        assert all(f'data-ref="{session_id}"' in page for session_id in ids), "the page does not list every session"
        someone = _signed_in(instance, "user00", tokens["user00"])
        api = httpx.Client(base_url=instance.url, headers={"Authorization": f"Bearer {boss_token}"}, timeout=30)
        figures = {
            "admin page": _timed(admin, "/science-portal/admin", args.loads),
            "admin page's polled fragment": _timed(admin, "/science-portal/admin/fragments/sessions", args.loads),
            "admin API, every session (JSON)": _timed(api, "/skaha/v1/admin/sessions", args.loads),
            "baseline: one user's dashboard": _timed(someone, "/science-portal/", args.loads),
            "baseline: skaha's GET /session?view=all": _timed(api, "/skaha/v1/session", args.loads, view="all"),
        }
    medians = {label: statistics.median(times) for label, (times, _) in figures.items()}
    print(f"{len(ids)} sessions of {args.users} users; medians of {args.loads} loads:")
    for label, (_, size) in figures.items():
        print(f"  {label:42} {medians[label]:7.1f} ms  {size / 1024:6.1f} KB")
    page_ms, dashboard_ms = medians["admin page"], medians["baseline: one user's dashboard"]
    print(f"admin page: {page_ms:.1f} ms (target <= {TARGET_MS:.0f}), {page_ms / dashboard_ms:.2f}x the dashboard")
    save_results(
        "admin_page",
        {
            "sessions": len(ids),
            "users": args.users,
            "times_ms": {label: times for label, (times, _) in figures.items()},
            "medians_ms": medians,
            "ratio_to_dashboard": page_ms / dashboard_ms,
        },
    )
    if page_ms > TARGET_MS:
        sys.exit(f"the admin page took {page_ms:.0f} ms, over the {TARGET_MS:.0f} ms target")


if __name__ == "__main__":
    main()
