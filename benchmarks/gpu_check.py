"""GPU support checked on a machine that has GPUs (the tests use a double of pynvml; this checks the real one).

    python benchmarks/gpu_check.py

1. Discovery: the emulator's NVML view (index, uuid, name, memory) against
   `nvidia-smi --query-gpu=index,uuid,name,memory.total`.
2. Figures: per GPU, memory used and utilization from NVML against nvidia-smi's, read together
   (memory within 64 MiB, utilization within 15 points).
3. Where the engine has the NVIDIA container runtime: its own instance (`bench-gpu`); a job with
   `gpus=1` runs `nvidia-smi -L` and must see exactly the one GPU the platform gave it (by uuid);
   with two or more GPUs, two such jobs get different GPUs; asking for one more than is free is a 400
   that says how many are free.

Prints PASS or FAIL per check and exits 0 only when every check passed. Record the output in the README.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time

import docker
from common import bench_instance

from emulator.runtime.gpus import Nvml

IMAGE = "skaha-emulator/notebook:latest"
failures: list[str] = []


def check(name: str, ok: bool, detail: str = "") -> None:
    print(f"{'PASS' if ok else 'FAIL'}  {name}{f': {detail}' if detail else ''}")
    if not ok:
        failures.append(name)


def smi(query: str) -> list[list[str]]:
    out = subprocess.run(
        ["nvidia-smi", f"--query-gpu={query}", "--format=csv,noheader,nounits"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [[cell.strip() for cell in line.split(",")] for line in out.strip().splitlines()]


def discovery_and_figures() -> list[str]:
    nvml = Nvml()
    gpus = nvml.open()
    rows = smi("index,uuid,name,memory.total")
    check("NVML finds every GPU nvidia-smi lists", len(gpus) == len(rows), f"{len(gpus)} vs {len(rows)}")
    for gpu, row in zip(gpus, rows, strict=False):
        same = [str(gpu.index), gpu.uuid, gpu.name] == row[:3] and abs(gpu.memory_bytes / 2**20 - int(row[3])) <= 1
        check(f"GPU {gpu.index} as nvidia-smi says", same, f"{gpu} vs {row}")
    for gpu, row in zip(gpus, smi("memory.used,utilization.gpu"), strict=False):
        figures = nvml.usage([gpu.uuid])
        ok = figures is not None and abs(figures[0] / 2**20 - int(row[0])) <= 64 and abs(figures[1] - int(row[1])) <= 15
        check(f"GPU {gpu.index} figures", ok, f"NVML {figures}, nvidia-smi {row} (MiB, %)")
    nvml.close()
    return [gpu.uuid for gpu in gpus]


def in_sessions(uuids: list[str]) -> None:
    client = docker.from_env()
    if "nvidia" not in (client.info().get("Runtimes") or {}):
        print("SKIP  sessions: this engine has no NVIDIA container runtime (nvidia-ctk runtime configure)")
        return
    with bench_instance("bench-gpu") as instance:
        api = instance.api()
        options = api.get("/context").json()["gpus"]["options"]
        check("/context offers every GPU", options == list(range(1, len(uuids) + 1)), str(options))
        jobs = []
        for number in range(min(2, len(uuids))):
            data = {"name": f"gpu{number}", "image": IMAGE, "type": "headless", "gpus": "1", "cmd": "nvidia-smi"}
            jobs.append(api.post("/session", data={**data, "args": "-L"}).text.strip())
        seen = []
        for job in jobs:
            deadline = time.monotonic() + 120
            while api.get(f"/session/{job}").json()["status"] not in ("Succeeded", "Failed"):
                assert time.monotonic() < deadline, f"{job} did not end"
                time.sleep(0.5)
            listed = [
                line for line in api.get(f"/session/{job}", params={"view": "logs"}).text.splitlines() if "UUID" in line
            ]
            check(f"job {job} sees exactly one GPU", len(listed) == 1, "; ".join(listed))
            seen += [uuid for uuid in uuids if listed and uuid in listed[0]]
        if len(jobs) == 2:
            check("two jobs get different GPUs", len(set(seen)) == 2, str(seen))
        too_many = api.post(
            "/session", data={"name": "many", "image": IMAGE, "type": "headless", "gpus": str(len(uuids) + 1)}
        )
        check("asking for more GPUs than there are is a 400", too_many.status_code == 400, too_many.text.strip())


def main() -> None:
    if shutil.which("nvidia-smi") is None:
        print("no nvidia-smi here: this check runs on a machine with NVIDIA GPUs")
        sys.exit(2)
    uuids = discovery_and_figures()
    if uuids:
        in_sessions(uuids)
    print(f"{len(failures)} check(s) failed" if failures else "every check passed")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
