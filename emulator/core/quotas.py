"""Each user's share of /arc on a shared server: a quota on their home, kept by watching it.

Filesystem quotas (XFS or ext4 project quotas) need the operator to set up the disk; most machines
have neither, so the platform measures each home itself (a walk on a thread, at most once a minute
per user with the default housekeeping interval) against EMULATE_USER_HOME_QUOTA_GB. At 90% the
user's launches are refused and the portal warns; at 100% their running sessions are stopped, each
with an event saying why, so one careless loop cannot fill the disk everybody shares. The way back is
deleting files: from a session still running between 90% and 100%, or, after a stop, by the operator on
the host. The figure is what the files take on disk.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from emulator.errors import DiskFull

GB = 1024**3
WARN_FRACTION = 0.9
PASSES_PER_MEASURE = 6  # a home is walked at most every sixth housekeeping pass (a minute by default)


def used_bytes(folder: Path, max_entries: int | None = None) -> tuple[int, bool]:
    """What the files under `folder` take on disk (symbolic links not followed), and whether the walk saw
    all of it (it stops after `max_entries`, the figure then a lower bound)."""
    used, seen, stack = 0, 0, [folder]
    while stack:
        try:
            entries = list(os.scandir(stack.pop()))
        except OSError:
            continue
        for entry in entries:
            seen += 1
            if max_entries is not None and seen > max_entries:
                return used, False
            try:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(Path(entry.path))
                else:
                    used += entry.stat(follow_symlinks=False).st_blocks * 512
            except OSError:
                continue
    return used, True


@dataclass(frozen=True)
class HomeUse:
    used_bytes: int
    quota_bytes: int | None  # None: no quota

    @property
    def fraction(self) -> float:
        return self.used_bytes / self.quota_bytes if self.quota_bytes else 0.0

    @property
    def warning(self) -> bool:
        return self.fraction >= WARN_FRACTION

    @property
    def full(self) -> bool:
        return self.quota_bytes is not None and self.used_bytes >= self.quota_bytes

    def words(self, home: str) -> str:
        if self.quota_bytes is None:
            return f"{home} holds {size(self.used_bytes)}"
        return f"{home} holds {size(self.used_bytes)} of its {size(self.quota_bytes)} quota ({self.fraction:.0%})"


def size(count: int) -> str:
    return f"{count / GB:.2f} GB" if count >= GB else f"{count / 1024**2:.0f} MB"


class HomeQuotas:
    def __init__(
        self,
        home_of: Callable[[str], Path],
        quota_gb: float | None,
        shown_as: Callable[[str], str],
        measure_every: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._home_of = home_of
        self._quota = int(quota_gb * GB) if quota_gb else None
        self._shown_as = shown_as  # the home as the user sees it: /arc/home/<name>
        self._every = measure_every
        self._clock = clock
        self._measured: dict[str, tuple[float, HomeUse]] = {}

    @property
    def enabled(self) -> bool:
        return self._quota is not None

    def measure(self, user: str) -> HomeUse:
        """Walk the user's home now (blocking: call on a thread)."""
        home = self._home_of(user)
        used = used_bytes(home)[0] if home.exists() else 0
        found = HomeUse(used, self._quota)
        self._measured[user] = (self._clock(), found)
        return found

    def known(self, user: str) -> HomeUse | None:
        """The last figure, when it is recent enough to act on."""
        entry = self._measured.get(user)
        if entry is None or self._clock() - entry[0] > self._every:
            return None
        return entry[1]

    def current(self, user: str) -> HomeUse:
        """The recent figure, or a new one (blocking: call on a thread)."""
        return self.known(user) or self.measure(user)

    def check_launch(self, use: HomeUse, user: str) -> None:
        """DiskFull (507) once the home holds 90% of its quota: what runs keeps running, nothing more starts."""
        if self.enabled and use.warning:
            raise DiskFull(
                f"{use.words(self._shown_as(user))}: delete files there before launching "
                f"(launches stop at {WARN_FRACTION:.0%}; running sessions are stopped at 100%)"
            )

    def stop_reason(self, use: HomeUse, user: str) -> str:
        return f"Stopped: {use.words(self._shown_as(user))}, over its quota; delete files there, then launch again"
