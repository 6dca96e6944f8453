"""What the benchmarks share: an instance of their own, set up and taken down the same way, and their results.

Each benchmark runs in a platform instance of its own (its name, a free port, state, config and /arc in a
temporary folder), so it never touches the instance people use, and leaves nothing behind. That set-up,
the `emulate` command they drive it with, their command lines and where their results go were written
again in every script; they are here once. The scripts run as `python benchmarks/<name>.py`, so this
module is imported as `common` (the script's folder is first on sys.path) and puts the repository root
there for `tests.*`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import docker
import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.instance import free_port  # noqa: E402

EMULATE = [sys.executable, "-m", "emulator"]
RESULTS = ROOT / "benchmarks" / "results"


def command_line(doc: str | None, **defaults: float) -> argparse.ArgumentParser:
    """A benchmark's command line: its docstring as the help, and `--NAME` (underscores as dashes) of each
    default's type (int or float) with that default."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    for name, default in defaults.items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=type(default), default=default)
    return parser


def instance_env(root: Path, instance: str, port: int) -> dict[str, str]:
    """The environment of `emulate` for instance `instance` on `port`, its files under `root`."""
    return {
        **os.environ,
        "EMULATE_INSTANCE": instance,
        "EMULATE_PORT": str(port),
        "EMULATE_STATE_DIR": str(root / "state"),
        "EMULATE_CONFIG_DIR": str(root / "config"),
        "EMULATE_ARC_DIR": str(root / "arc"),
    }


@dataclass
class BenchInstance:
    """A running instance of a benchmark's own: its files, its port, `emulate` for it and its API."""

    root: Path
    port: int
    env: dict[str, str]
    token: str = ""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def emulate(self, *args: str, env: dict[str, str] | None = None) -> str:
        """`emulate ARGS` for this instance (or with `env` instead of its own); its stdout. Raises if it fails."""
        command = [*EMULATE, *args]
        return subprocess.run(command, env=env or self.env, check=True, capture_output=True, text=True).stdout

    def add_user(self, name: str) -> str:
        """`emulate users add NAME`; the new user's token."""
        printed = self.emulate("users", "add", name)
        return dict(line.split(":", 1) for line in printed.splitlines() if ":" in line)["token"].strip()

    def api(self, token: str | None = None, timeout: float = 5.0) -> httpx.Client:
        """A client of the skaha API as `token`'s user (this instance's own token unless given).

        `timeout` is httpx's own default unless given.
        """
        headers = {"Authorization": f"Bearer {token or self.token}"}
        return httpx.Client(base_url=f"{self.url}/skaha/v0", headers=headers, timeout=timeout)


@contextmanager
def bench_instance(name: str) -> Iterator[BenchInstance]:
    """Instance `name` on a free port, up (`emulate up --no-build`) for the block; then down with its sessions
    and its files removed, whatever happened."""
    root = Path(tempfile.mkdtemp(prefix=f"emulate-{name}-"))
    port = free_port()
    instance = BenchInstance(root=root, port=port, env=instance_env(root, name, port))
    try:
        instance.emulate("up", "--no-build")
        instance.token = instance.emulate("token").strip()
        yield instance
    finally:
        subprocess.run([*EMULATE, "down", "--remove-sessions"], env=instance.env, capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


def memory_mb(client: docker.DockerClient, name: str) -> float:
    """A container's memory in MB without the page cache, as `docker stats` shows it."""
    memory = client.api.stats(name, stream=False)["memory_stats"]
    details = memory.get("stats") or {}
    cache = details.get("total_inactive_file", details.get("inactive_file", 0))
    return (int(memory.get("usage", 0)) - int(cache)) / 1e6


def save_results(name: str, results: object) -> None:
    """Writes benchmarks/results/NAME.json."""
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(results, indent=2))
