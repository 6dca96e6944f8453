"""Launch-to-ready of a notebook: through the platform vs a raw `docker run` of the same image and command.

    python benchmarks/launch.py [--runs 5]

Both sides are timed from the moment the launch is asked for to the first HTTP
answer of JupyterLab's /api, polled every 10 ms: the raw container directly at its
address, the platform's session through the gateway at its connect path. The
platform side runs in its own instance (`bench`, on a free port), which is removed
afterwards. Prints medians and their ratio (target: <= 1.05).

It runs on whatever engine `emulate` finds (DOCKER_HOST, the context, a rootless socket): Docker or
Podman, rootful or rootless, each against its own raw `run`. A rootless engine's container addresses
live in its own network namespace, so there the raw container is reached through a published port, as a
user of that engine would; rootless Podman's raw run gets the same `keep-id` mapping the platform gives.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import docker
import httpx
from common import ROOT, bench_instance, command_line, save_results

from emulator.runtime.endpoint import client_from_environment
from emulator.runtime.engine import EngineFacts, engine_facts

IMAGE = "skaha-emulator/notebook:latest"
POLL = 0.01


def answered(response: httpx.Response) -> bool:
    return response.status_code == 200  # Jupyter's /api; the gateway says 404 or 502 before


def wait_http(
    url: str,
    started: float,
    timeout: float = 120,
    headers: dict[str, str] | None = None,
    ready: Callable[[httpx.Response], bool] = answered,
) -> float:
    """Seconds from `started` until `url` answers as `ready` wants, polled every POLL."""
    with httpx.Client(timeout=2, headers=headers) as client:
        while time.perf_counter() - started < timeout:
            try:
                if ready(client.get(url)):
                    return time.perf_counter() - started
            except httpx.HTTPError:
                pass
            time.sleep(POLL)
    raise TimeoutError(url)


def raw_run(
    client: docker.DockerClient,
    facts: EngineFacts,
    network: str,
    scripts: Path,
    home: Path,
    *,
    image: str = IMAGE,
    ready: Callable[[httpx.Response], bool] = answered,
) -> float:
    """`docker run` (or `podman run`) of a notebook image with skaha's launch command, as a user would type it:
    seconds until its /api answers as `ready` wants."""
    session_id = "bench000"
    started = time.perf_counter()
    api = client.api
    host_config = api.create_host_config(
        binds={str(scripts): {"bind": "/skaha-system", "mode": "ro"}, str(home): {"bind": "/home/bench", "mode": "rw"}},
        network_mode=network,
        port_bindings={8888: ("127.0.0.1", None)} if facts.rootless else None,
    )
    if facts.keep_id:  # as the platform runs it there: the user's own files stay theirs
        host_config["UsernsMode"] = "keep-id:uid=20001,gid=20001"
    created = api.create_container(
        image,
        ["/skaha-system/start-jupyterlab.sh", session_id],
        user="20001:20001",
        environment={"HOME": "/home/bench", "JUPYTER_TOKEN": session_id},
        ports=[8888] if facts.rootless else None,
        host_config=host_config,
    )
    try:
        api.start(created["Id"])
        attrs = api.inspect_container(created["Id"])
        if facts.rootless:
            published = attrs["NetworkSettings"]["Ports"]["8888/tcp"][0]
            where = f"127.0.0.1:{published['HostPort']}"
        else:
            where = f"{attrs['NetworkSettings']['Networks'][network]['IPAddress']}:8888"
        return wait_http(f"http://{where}/session/notebook/{session_id}/api", started, ready=ready)
    finally:
        api.remove_container(created["Id"], force=True)


def platform_run(url: str, token: str) -> tuple[float, float]:
    """Seconds to the app answering through the gateway, and to the API saying Running."""
    api = httpx.Client(base_url=f"{url}/skaha/v0", headers={"Authorization": f"Bearer {token}"}, timeout=30)
    started = time.perf_counter()
    session_id = api.post("/session", data={"name": "bench", "image": IMAGE, "type": "notebook"}).text.strip()
    try:
        # The token also opens session routes where the gateway asks who is asking (off loopback).
        signed = {"Authorization": api.headers["Authorization"]}
        answers = wait_http(f"{url}/session/notebook/{session_id}/api", started, headers=signed)
        while api.get(f"/session/{session_id}").json()["status"] != "Running":
            time.sleep(POLL)
        running = time.perf_counter() - started
        return answers, running
    finally:
        api.delete(f"/session/{session_id}")


def main() -> None:
    args = command_line(__doc__, runs=5).parse_args()

    client = client_from_environment()
    facts = engine_facts(client)
    with bench_instance("bench") as instance:
        url, token = instance.url, instance.token
        home = instance.root / "raw-home"
        home.mkdir()
        if facts.keep_id or facts.rootless:  # the engine's user is the session's face, or its root: theirs
            home.chmod(0o777 if not facts.keep_id else 0o755)
        else:
            os.chown(home, 20001, 20001)
        platform_run(url, token)  # warm-up: the first launch of an image reads its /etc/passwd once
        raw, through, running = [], [], []
        for _ in range(args.runs):
            raw.append(raw_run(client, facts, "emulate-bench", ROOT / "profiles" / "skaha-system", home))
            answers, ready = platform_run(url, token)
            through.append(answers)
            running.append(ready)

    medians = {
        "raw run": statistics.median(raw),
        "platform (gateway answers)": statistics.median(through),
        "platform (API says Running)": statistics.median(running),
    }
    baseline = medians["raw run"]
    print(f"notebook launch-to-ready on {facts.description}, median of {args.runs} (poll {POLL * 1000:.0f} ms)")
    for name, value in medians.items():
        print(f"  {name:30s} {value:6.3f} s   ratio {value / baseline:5.2f}")
    rootful_docker = facts.kind == "docker" and not facts.rootless
    save_results(
        "launch" if rootful_docker else f"launch-{'rootless-' if facts.rootless else ''}{facts.kind}",
        {
            "engine": facts.description,
            "runs": args.runs,
            "raw": raw,
            "platform_answers": through,
            "platform_running": running,
            "medians": medians,
        },
    )


if __name__ == "__main__":
    main()
