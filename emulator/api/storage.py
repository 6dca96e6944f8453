"""The portal's home-storage panel: what a user's /arc/home holds, and what the disk under /arc has free.

Walking a large home takes time, so the figure is cached for a minute and the walk gives up after
a fixed number of entries (then the figure is shown as "at least").
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

CACHE_SECONDS = 60.0
MAX_ENTRIES = 200_000
_cache: dict[Path, tuple[float, int, bool]] = {}


@dataclass(frozen=True)
class Storage:
    used_bytes: int
    complete: bool  # False when the walk stopped early: `used_bytes` is a lower bound
    free_bytes: int
    total_bytes: int


def _walk(home: Path) -> tuple[int, bool]:
    used, seen, stack = 0, 0, [home]
    while stack:
        try:
            entries = list(os.scandir(stack.pop()))
        except OSError:
            continue
        for entry in entries:
            seen += 1
            if seen > MAX_ENTRIES:
                return used, False
            try:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(Path(entry.path))
                else:
                    used += entry.stat(follow_symlinks=False).st_blocks * 512
            except OSError:
                continue
    return used, True


def home_storage(home: Path, arc_root: Path) -> Storage:
    now = time.monotonic()
    cached = _cache.get(home)
    if cached is None or now - cached[0] > CACHE_SECONDS:
        used, complete = _walk(home) if home.exists() else (0, True)
        cached = _cache[home] = (now, used, complete)
    disk = shutil.disk_usage(arc_root if arc_root.exists() else Path("/"))
    return Storage(cached[1], cached[2], disk.free, disk.total)
