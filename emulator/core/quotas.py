"""Each user's share of the server's disk: a quota on their home and on what their sessions write inside their
own containers (which lands on the engine's disk), kept by watching both.

Filesystem quotas (XFS or ext4 project quotas) need the operator to set up the disk; most machines
have neither, so the platform measures each home itself (a walk on a thread, at most once a minute
per user with the default housekeeping interval) against EMULATE_USER_HOME_QUOTA_GB. At 90% the
user's launches are refused and the portal warns; at 100% their running sessions are stopped, each
with an event saying why, so one careless loop cannot fill the disk everybody shares. A session's own
layer is counted because on most machines the engine cannot cap it (a size limit needs overlay2 on XFS
with project quotas, or btrfs or ZFS): there its size is measured and counted here instead. The way back is
deleting files: from a session still running between 90% and 100%, or, after a stop, by the operator on
the host. The figure is what the files take on disk.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from emulator import labels, naming
from emulator.core.contract import TOP_LEVEL
from emulator.core.store import Store
from emulator.errors import DiskFull
from emulator.runtime.base import Runtime
from emulator.settings import Settings

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
    home_bytes: int
    quota_bytes: int | None  # None: no quota
    written_bytes: int = 0  # inside the user's session containers, outside /arc

    @property
    def used_bytes(self) -> int:
        return self.home_bytes + self.written_bytes

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
        held = f"{home} holds {size(self.home_bytes)}"
        if self.written_bytes:
            held += f" and the sessions' own containers {size(self.written_bytes)}, {size(self.used_bytes)} in all,"
        if self.quota_bytes is None:
            return held
        return f"{held} of its {size(self.quota_bytes)} quota ({self.fraction:.0%})"


def size(count: int) -> str:
    return f"{count / GB:.2f} GB" if count >= GB else f"{count / 1024**2:.0f} MB"


async def written_by_user(runtime: Runtime, store: Store, settings: Settings) -> dict[str, int]:
    """What each user's session containers hold in their own layers (the engine measures it: call seldom)."""
    sizes = await runtime.written(labels.selector(settings.instance, labels.ROLE_SESSION))
    per_user: dict[str, int] = {}
    for session in store.sessions():
        written = sizes.get(naming.session_container(settings.prefix, session.type, session.id), 0)
        per_user[session.user] = per_user.get(session.user, 0) + written
    return per_user


async def _nothing_written() -> dict[str, int]:
    return {}


def home_quotas(settings: Settings, runtime: Runtime, store: Store) -> HomeQuotas:
    """The quota EMULATE_USER_HOME_QUOTA_GB sets on each user's home and what their sessions write."""
    return HomeQuotas(
        lambda name: settings.layout.user_home(name),
        settings.user_home_quota_gb,
        shown_as=lambda name: f"{TOP_LEVEL}/home/{name}",
        measure_every=settings.loop_interval * PASSES_PER_MEASURE,
        written=lambda: written_by_user(runtime, store, settings),
    )


class HomeQuotas:
    def __init__(
        self,
        host_home: Callable[[str], Path],
        quota_gb: float | None,
        shown_as: Callable[[str], str],
        measure_every: float,
        clock: Callable[[], float] = time.monotonic,
        written: Callable[[], Awaitable[dict[str, int]]] = _nothing_written,
    ) -> None:
        """`written`: what each user's session containers hold in their own layers (`written_by_user`)."""
        self._host_home = host_home
        self._quota = int(quota_gb * GB) if quota_gb else None
        self._shown_as = shown_as  # the home as the user sees it: /arc/home/<name>
        self._every = measure_every
        self._clock = clock
        self._written = written
        self._measured: dict[str, tuple[float, HomeUse]] = {}
        self._measuring: dict[str, asyncio.Task[HomeUse]] = {}  # measurements running, per user

    @property
    def enabled(self) -> bool:
        return self._quota is not None

    def measure(self, user: str, written_bytes: int = 0) -> HomeUse:
        """Walk the user's home now (blocking: call on a thread); `written_bytes`: what their session containers
        hold in their own layers, as the engine measured it."""
        home = self._host_home(user)
        used = used_bytes(home)[0] if home.exists() else 0
        found = HomeUse(used, self._quota, written_bytes)
        self._measured[user] = (self._clock(), found)
        return found

    async def written_by_user(self) -> dict[str, int]:
        """What each user's session containers hold in their own layers (the engine measures it: call seldom)."""
        return await self._written()

    async def home_use(self, user: str, written: dict[str, int] | None = None) -> HomeUse:
        """The user's figure against their quota: the recent one, or measured now (`written`: the layers' sizes,
        when the caller has them already). Callers asking while a measurement runs share it."""
        known = self.known(user)
        if known is not None:
            return known
        task = self._measuring.get(user)
        if task is None:
            task = self._measuring[user] = asyncio.create_task(self._measure(user, written))
            task.add_done_callback(lambda _: self._measuring.pop(user, None))
        return await asyncio.shield(task)

    async def _measure(self, user: str, written: dict[str, int] | None) -> HomeUse:
        if written is None:
            written = await self._written()
        return await asyncio.to_thread(self.measure, user, written.get(user, 0))

    def known(self, user: str) -> HomeUse | None:
        """The last figure, when it is recent enough to act on."""
        entry = self._measured.get(user)
        if entry is None or self._clock() - entry[0] > self._every:
            return None
        return entry[1]

    def check_launch(self, use: HomeUse, user: str) -> None:
        """DiskFull (507) once the home holds 90% of its quota: what runs keeps running, nothing more starts."""
        if self.enabled and use.warning:
            raise DiskFull(
                f"{use.words(self._shown_as(user))}: delete files there before launching "
                f"(launches stop at {WARN_FRACTION:.0%}; running sessions are stopped at 100%)"
            )

    def stop_reason(self, use: HomeUse, user: str) -> str:
        return f"Stopped: {use.words(self._shown_as(user))}, over its quota; delete files there, then launch again"
