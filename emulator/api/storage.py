"""The portal's home-storage panel: what a user's /arc/home holds, and what the disk under /arc has free.

Walking a large home takes time, so the figure is cached for a minute (or until a file is added to or removed
from the home's top folder, which changes its modification time) and the walk gives up after a fixed number of
entries (then the figure is shown as "at least").
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from emulator.core.quotas import HomeUse, used_bytes

CACHE_SECONDS = 60.0
MAX_ENTRIES = 200_000
_cache: dict[Path, tuple[float, int, bool, int]] = {}  # when, used bytes, complete, the home's mtime (ns)


@dataclass(frozen=True)
class Storage:
    used_bytes: int
    complete: bool  # False when the walk stopped early: `used_bytes` is a lower bound
    free_bytes: int
    total_bytes: int
    quota_bytes: int | None = None  # the user's quota (core/quotas.py), where the server sets one
    warning: bool = False  # at 90% of it: launches are refused
    written_bytes: int = 0  # inside the user's session containers, counted toward the quota

    @property
    def quota_gb(self) -> float | None:
        return self.quota_bytes / 1024**3 if self.quota_bytes else None


def home_storage(home: Path, arc: Path, quota: HomeUse | None = None) -> Storage:
    """`arc`: /arc on the host (Settings.arc_path); `quota`: the user's figure from the quota watch, when the
    server keeps one (it is then the one shown)."""
    disk = shutil.disk_usage(arc if arc.exists() else Path("/"))
    if quota is not None and quota.quota_bytes is not None:
        return Storage(
            quota.home_bytes, True, disk.free, disk.total, quota.quota_bytes, quota.warning, quota.written_bytes
        )
    now, changed = time.monotonic(), _modified(home)
    cached = _cache.get(home)
    if cached is None or now - cached[0] > CACHE_SECONDS or cached[3] != changed:
        used, complete = used_bytes(home, MAX_ENTRIES) if home.exists() else (0, True)
        cached = _cache[home] = (now, used, complete, changed)
    return Storage(cached[1], cached[2], disk.free, disk.total)


def _modified(home: Path) -> int:
    try:
        return home.stat().st_mtime_ns
    except OSError:  # no home yet
        return 0
