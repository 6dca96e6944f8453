"""Launch-to-ready of a notebook: through the platform vs a raw `docker run` of the same image and command.

    python benchmarks/launch.py [--runs 5]

Both sides are timed from the moment the launch is asked for to the first HTTP
answer of JupyterLab's /api, polled every 10 ms: the raw container directly at its
address, the platform's session through the gateway at its connect path. The
platform side runs in its own instance (`bench`, on a free port), which is removed
afterwards. Prints medians and their ratio (target: <= 1.15).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import docker
import httpx

ROOT = Path(__file__).resolve().parent.parent
IMAGE = "skaha-emulator/notebook:latest"
POLL = 0.01


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_http(url: str, started: float, timeout: float = 120) -> float:
    with httpx.Client(timeout=2) as client:
        while time.perf_counter() - started < timeout:
            try:
                if client.get(url).status_code == 200:  # Jupyter's /api; the gateway says 404 or 502 before
                    return time.perf_counter() - started
            except httpx.HTTPError:
                pass
            time.sleep(POLL)
    raise TimeoutError(url)


def raw_run(client: docker.DockerClient, network: str, scripts: Path, home: Path) -> float:
    """`docker run` of the notebook image with skaha's launch command, as a user would type it."""
    session_id = "bench000"
    started = time.perf_counter()
    container = client.containers.run(
        IMAGE,
        ["/skaha-system/start-jupyterlab.sh", session_id],
        detach=True,
        network=network,
        user="20001:20001",
        environment={"HOME": "/home/bench", "JUPYTER_TOKEN": session_id},
        volumes={str(scripts): {"bind": "/skaha-system", "mode": "ro"}, str(home): {"bind": "/home/bench"}},
    )
    try:
        container.reload()
        address = container.attrs["NetworkSettings"]["Networks"][network]["IPAddress"]
        return _wait_http(f"http://{address}:8888/session/notebook/{session_id}/api", started)
    finally:
        container.remove(force=True)


def platform_run(url: str, token: str) -> tuple[float, float]:
    """Seconds to the app answering through the gateway, and to the API saying Running."""
    api = httpx.Client(base_url=f"{url}/skaha/v0", headers={"Authorization": f"Bearer {token}"}, timeout=30)
    started = time.perf_counter()
    session_id = api.post("/session", data={"name": "bench", "image": IMAGE, "type": "notebook"}).text.strip()
    try:
        answered = _wait_http(f"{url}/session/notebook/{session_id}/api", started)
        while api.get(f"/session/{session_id}").json()["status"] != "Running":
            time.sleep(POLL)
        running = time.perf_counter() - started
        return answered, running
    finally:
        api.delete(f"/session/{session_id}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    client = docker.from_env()
    root = Path(tempfile.mkdtemp(prefix="emulate-bench-"))
    port = _free_port()
    env = {
        **os.environ,
        "EMULATE_INSTANCE": "bench",
        "EMULATE_PORT": str(port),
        "EMULATE_STATE_DIR": str(root / "state"),
        "EMULATE_CONFIG_DIR": str(root / "config"),
        "EMULATE_ARC_DIR": str(root / "arc"),
    }
    emulate = [sys.executable, "-m", "emulator"]
    subprocess.run([*emulate, "up", "--no-build"], env=env, check=True, capture_output=True)
    token = subprocess.run([*emulate, "token"], env=env, check=True, capture_output=True, text=True).stdout.strip()
    url = f"http://127.0.0.1:{port}"
    home = root / "raw-home"
    home.mkdir()
    os.chown(home, 20001, 20001)
    try:
        platform_run(url, token)  # warm-up: the first launch of an image reads its /etc/passwd once
        raw, through, running = [], [], []
        for _ in range(args.runs):
            raw.append(raw_run(client, "emulate-bench", ROOT / "profiles" / "skaha-system", home))
            answered, ready = platform_run(url, token)
            through.append(answered)
            running.append(ready)
    finally:
        subprocess.run([*emulate, "down", "--remove-sessions"], env=env, capture_output=True)
        shutil.rmtree(root, ignore_errors=True)

    medians = {
        "raw docker run": statistics.median(raw),
        "platform (gateway answers)": statistics.median(through),
        "platform (API says Running)": statistics.median(running),
    }
    baseline = medians["raw docker run"]
    print(f"notebook launch-to-ready, median of {args.runs} (poll {POLL * 1000:.0f} ms)")
    for name, value in medians.items():
        print(f"  {name:30s} {value:6.3f} s   ratio {value / baseline:5.2f}")
    results = ROOT / "benchmarks" / "results"
    results.mkdir(exist_ok=True)
    (results / "launch.json").write_text(
        json.dumps(
            {
                "runs": args.runs,
                "raw": raw,
                "platform_answers": through,
                "platform_running": running,
                "medians": medians,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
