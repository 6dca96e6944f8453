"""Images from anywhere: pulls, bundles and the offline set-up, each against its raw Docker baseline.

    python benchmarks/images.py [--runs 5] [--payload-mb 512] [--skip-offline]

1. Launch of an image that is not here, through the platform, to Running, against `docker pull` then
   `docker run` of the same image from the same local registry (Debian's docker-registry on loopback).
   The image is a layer of random bytes on debian:bookworm-slim, removed before every run.
2. `emulate bundle load` (checksums, then `docker load`) against `docker load` of the same image.
3. A clean clone to a Running notebook with `make offline BUNDLE=` under `unshare -n` (no network at
   all), then `emulate up` and `emulate launch notebook` (root only; the platform's and the notebook's
   images are untagged first, so the bundle really brings them, and restored afterwards).
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path

import docker
import httpx
from common import EMULATE, ROOT, bench_instance, command_line, instance_env, save_results

from emulator.host.images import GATEWAY_IMAGE
from emulator.settings import load_settings
from tests.registry import Registry, unique_image  # a real registry, as the tests use

POLL = 0.01
PLATFORM_IMAGES = (load_settings().service_image, GATEWAY_IMAGE, "skaha-emulator/notebook:latest")


def _forget(client: docker.DockerClient, name: str) -> None:
    with suppress(docker.errors.ImageNotFound):
        client.images.remove(name, force=True)


def _median(label: str, values: list[float], baseline: float) -> dict[str, float]:
    value = statistics.median(values)
    print(f"  {label:44s} {value:7.2f} s   ratio {value / baseline:5.2f}")
    return {"median_s": value, "ratio": value / baseline}


def bench_pull(client: docker.DockerClient, root: Path, runs: int, payload_mb: int) -> dict[str, object]:
    registry = Registry(root / "registry")
    name = registry.push(client, unique_image(client, "bench-pull:local", payload_mb << 20), "bench/pull", "1.0")
    _forget(client, "bench-pull:local")

    def raw() -> float:
        _forget(client, name)
        started = time.perf_counter()
        client.images.pull(name)
        container = client.containers.run(name, ["sleep", "60"], detach=True, user="20001:20001")
        elapsed = time.perf_counter() - started
        container.remove(force=True)
        return elapsed

    def platform(api: httpx.Client) -> float:
        _forget(client, name)
        started = time.perf_counter()
        data = {"name": "pull", "image": name, "type": "headless", "cmd": "sleep", "args": "60"}
        session_id = api.post("/session", data=data).text.strip()
        while (status := api.get(f"/session/{session_id}").json()["status"]) != "Running":
            if status == "Failed" or time.perf_counter() - started > 300:
                raise RuntimeError(api.get(f"/session/{session_id}", params={"view": "events"}).text)
            time.sleep(POLL)
        elapsed = time.perf_counter() - started
        api.delete(f"/session/{session_id}")
        while api.get(f"/session/{session_id}").status_code != 404:
            time.sleep(0.05)
        return elapsed

    try:
        with bench_instance("bench-images") as instance:
            api = instance.api()
            platform(api)  # warm-up: the user's network, the image's /etc/passwd
            raws, platforms = [], []
            for _ in range(runs):
                raws.append(raw())
                platforms.append(platform(api))
    finally:
        _forget(client, name)
        registry.stop()
    print(f"launch of a {payload_mb} MB image not yet here, to Running (median of {runs})")
    baseline = statistics.median(raws)
    return {
        "raw": _median("raw docker pull + docker run", raws, baseline),
        "platform": _median("platform: pull, start, Running", platforms, baseline),
        "raw_s": raws,
        "platform_s": platforms,
    }


def bench_bundle(client: docker.DockerClient, root: Path, runs: int, payload_mb: int) -> dict[str, object]:
    name = unique_image(client, "bench-bundle:1.0", payload_mb << 20)
    saved, bundle = root / "saved.tar", root / "bench.bundle"
    env = {**os.environ, "EMULATE_PROFILES_DIR": str(root / "profiles")}
    shutil.copytree(ROOT / "profiles", root / "profiles")
    with saved.open("wb") as out:
        for chunk in client.images.get(name).save(named=True):
            out.write(chunk)
    command = [*EMULATE, "bundle", "create", str(bundle), name, "--without-platform", "--without-wheels"]
    subprocess.run(command, env=env, check=True, capture_output=True)

    def timed(load: Callable[[], object]) -> float:
        _forget(client, name)
        started = time.perf_counter()
        load()
        return time.perf_counter() - started

    def docker_load() -> None:  # the command people compare with
        subprocess.run(["docker", "load", "-i", str(saved)], check=True, capture_output=True)

    def bundle_load() -> None:
        subprocess.run([*EMULATE, "bundle", "load", str(bundle)], env=env, check=True, capture_output=True)

    try:
        raws, bundles = [], []
        for _ in range(runs):
            raws.append(timed(docker_load))
            bundles.append(timed(bundle_load))
    finally:
        _forget(client, name)
    size = bundle.stat().st_size / 1e6
    print(f"loading {size:.0f} MB of images (median of {runs})")
    baseline = statistics.median(raws)
    return {
        "size_mb": size,
        "raw": _median("raw docker load -i", raws, baseline),
        "bundle": _median("emulate bundle load (checksums, then load)", bundles, baseline),
        "raw_s": raws,
        "bundle_s": bundles,
    }


def bench_offline(client: docker.DockerClient, root: Path) -> dict[str, object]:
    from tests.instance import free_port, remove_instance

    bundle = root / "workshop.bundle"
    subprocess.run([*EMULATE, "bundle", "create", str(bundle), "--type", "notebook"], check=True, capture_output=True)
    clone = root / "clone"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True)
    kept = {image: client.images.get(image).id for image in PLATFORM_IMAGES}
    env = instance_env(root / "offline", "bench-offline", free_port())
    env = {k: v for k, v in env.items() if not k.startswith("VIRTUAL")}
    env["PATH"] = os.pathsep.join(p for p in env["PATH"].split(os.pathsep) if ".venv" not in p)
    emulate = str(clone / ".venv" / "bin" / "emulate")
    try:
        for image in kept:
            client.images.remove(image, force=True)
        started = time.perf_counter()
        subprocess.run(["unshare", "-n", "make", "offline", f"BUNDLE={bundle}"], cwd=clone, env=env, check=True)
        set_up = time.perf_counter() - started
        subprocess.run([emulate, "up"], cwd=clone, env=env, check=True, capture_output=True)
        subprocess.run([emulate, "launch", "notebook"], cwd=clone, env=env, check=True, capture_output=True)
        total = time.perf_counter() - started
    finally:
        for image, image_id in kept.items():
            with suppress(docker.errors.ImageNotFound):
                if not client.images.list(name=image):
                    client.images.get(image_id).tag(*image.rsplit(":", 1))
        subprocess.run([emulate, "down", "--remove-sessions"], env=env, capture_output=True)
        remove_instance(client, "bench-offline")
    size = bundle.stat().st_size / 1e9
    print(f"clean clone to a Running notebook with no network ({size:.2f} GB bundle)")
    print(f"  make offline (venv from wheels, bundle load)      {set_up:7.1f} s")
    print(f"  + emulate up + emulate launch notebook -> Running  {total:7.1f} s")
    return {"bundle_gb": size, "offline_setup_s": set_up, "to_running_s": total}


def main() -> None:
    parser = command_line(__doc__, runs=5, payload_mb=512)
    parser.add_argument("--skip-offline", action="store_true", help="skip the clean-clone set-up (needs root)")
    args = parser.parse_args()
    client = docker.from_env()
    root = Path(tempfile.mkdtemp(prefix="emulate-bench-images-"))
    results: dict[str, object] = {}
    try:
        results["pull"] = bench_pull(client, root, args.runs, args.payload_mb)
        results["bundle"] = bench_bundle(client, root, args.runs, args.payload_mb)
        if not args.skip_offline and os.geteuid() == 0 and shutil.which("unshare"):
            results["offline"] = bench_offline(client, root)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    save_results("images", results)


if __name__ == "__main__":
    main()
