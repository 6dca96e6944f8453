"""CANFAR's Science Portal 2.0, built once from a source folder into a cache of ours and reused.

The source (SCIENCE_PORTAL_SRC: a checkout or `git archive` of opencadc/science-portal) is never written
to and none of its code is copied into this repository: it is copied into a cache folder keyed by its
files, the build's environment and Node's version, built there (`npm ci`, `npm run build`), and the
standalone server is given the static files and `public/` it serves beside it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

PINNED_COMMIT = "f6823b566d7a7277e841e7b04727195f42ae3f3b"
# sha256 of the pinned commit's package-lock.json: how a `git archive` (no .git) is recognised as it.
PINNED_LOCKFILE = "0eb15d32d9fd870ce1abc7e8f233446680f5c416ea9a73bdde54984d1c2ffae4"
# CANFAR mode; NEXT_PUBLIC_* are inlined into the browser bundle, so they must be set now, not at run time.
BUILD_ENV = {
    "NEXT_TELEMETRY_DISABLED": "1",
    "NEXT_USE_CANFAR": "true",
    "NEXT_PUBLIC_USE_CANFAR": "true",
    "NEXT_PUBLIC_BASE_PATH": "",
}
SKIPPED = {".git", "node_modules", ".next"}  # build outputs and history: not part of what is built
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "skaha-emulator" / "portal2"


class BuildFailed(RuntimeError):
    """npm could not install or build the portal (its output's tail is in the message)."""


@dataclass(frozen=True)
class Built:
    server: Path  # .next/standalone/server.js, with .next/static and public beside it
    source: str  # which portal this is: a commit, or what the lockfile says
    seconds: float  # how long building took now (0: reused from the cache)


def source_files(src: Path) -> list[Path]:
    return sorted(p for p in src.rglob("*") if p.is_file() and not SKIPPED.intersection(p.relative_to(src).parts[:-1]))


def cache_key(src: Path) -> str:
    """What the build depends on: every source file, the build's environment and Node's version."""
    digest = hashlib.sha256()
    node = subprocess.run(["node", "--version"], capture_output=True, text=True, check=True).stdout.strip()
    digest.update(f"{sorted(BUILD_ENV.items())} {node}\n".encode())
    for path in source_files(src):
        digest.update(f"{path.relative_to(src)}\0".encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()[:16]


def identify(src: Path) -> str:
    """Which portal `src` is: its checkout's commit, the SCIENCE_PORTAL_COMMIT note, or its lockfile's match."""
    if (src / ".git").exists():
        head = subprocess.run(["git", "-C", str(src), "rev-parse", "HEAD"], capture_output=True, text=True)
        if head.returncode == 0:
            return head.stdout.strip()
    if os.environ.get("SCIENCE_PORTAL_COMMIT"):
        return os.environ["SCIENCE_PORTAL_COMMIT"]
    lockfile = hashlib.sha256((src / "package-lock.json").read_bytes()).hexdigest()
    return PINNED_COMMIT if lockfile == PINNED_LOCKFILE else f"unknown (package-lock.json sha256 {lockfile[:12]})"


def npm(folder: Path, *args: str) -> None:
    env = {**os.environ, **BUILD_ENV}
    result = subprocess.run(["npm", *args], cwd=folder, env=env, capture_output=True, text=True, timeout=900)
    if result.returncode != 0:
        raise BuildFailed(
            f"npm {' '.join(args)} failed ({result.returncode}):\n{(result.stdout + result.stderr)[-4000:]}"
        )


def build(src: Path, cache: Path = CACHE) -> Built:
    """The portal built from `src`: the cached build when there is one, else a new one (a few minutes)."""
    if not (src / "package-lock.json").is_file():
        raise BuildFailed(f"{src} is not a science-portal source folder (no package-lock.json)")
    folder = cache / cache_key(src)
    server = folder / ".next" / "standalone" / "server.js"
    if server.is_file():
        return Built(server, identify(src), 0.0)
    started = time.monotonic()
    work = cache / f"{folder.name}.building-{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(src, work, ignore=shutil.ignore_patterns(*SKIPPED))
    try:
        npm(work, "ci", "--no-audit", "--no-fund")
        npm(work, "run", "build")
        # Standalone output serves its static chunks and public/ only when they sit beside server.js.
        standalone = work / ".next" / "standalone"
        shutil.copytree(work / ".next" / "static", standalone / ".next" / "static", dirs_exist_ok=True)
        if (work / "public").is_dir():
            shutil.copytree(work / "public", standalone / "public", dirs_exist_ok=True)
        shutil.rmtree(folder, ignore_errors=True)
        work.rename(folder)  # whole or not at all: a build cut short is never taken for a finished one
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return Built(server, identify(src), time.monotonic() - started)
