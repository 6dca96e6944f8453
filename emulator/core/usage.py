"""Memory and CPU in use by each running session, sampled only while someone asks.

As metrics-server feeds `kubectl top`, listings read the last sample rather than asking the engine
on every call; unlike it, nothing is sampled while nobody looks (an idle platform costs nothing). A
sample older than FRESH seconds is renewed in the background when it is asked for, and one older than
WINDOW seconds is not shown at all, so the figures a page or `emulate ps` shows are at most 15 s old.
CPU is the mean over the time between two samples; a session not looked at for a while is sampled
twice, a second apart, for a current figure.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable

from emulator.core.models import Session, Status
from emulator.runtime.base import Runtime, Usage

log = logging.getLogger(__name__)

FRESH = 5.0  # seconds a sample is shown before the next ask renews it
WINDOW = 15.0  # a previous sample older than this gives no current CPU figure: take two
FORGET = 3600.0  # samples of containers nobody asked about for this long are dropped


GpuMeter = Callable[[list[str]], tuple[int, float] | None]  # GPU uuids -> (memory used, utilization %)


class UsageSampler:
    def __init__(
        self, runtime: Runtime, container_of: Callable[[Session], str], gpu_meter: GpuMeter | None = None
    ) -> None:
        self._runtime = runtime
        self._container_of = container_of
        self._gpu_meter = gpu_meter
        self._samples: dict[str, tuple[float, Usage]] = {}
        self._refreshing: dict[str, asyncio.Task[None]] = {}

    def of(self, session: Session) -> Usage | None:
        """The last sample of a Running session (None until there is one); a stale one is renewed."""
        if session.status is not Status.RUNNING:
            return None
        name = self._container_of(session)
        taken, usage = self._samples.get(name, (float("-inf"), None))
        age = time.monotonic() - taken
        if age > FRESH and name not in self._refreshing:
            refresh = self._refresh(name, taken, session.gpu_devices)
            task = asyncio.get_running_loop().create_task(refresh, name=f"usage {name}")
            self._refreshing[name] = task
            task.add_done_callback(lambda done: self._finished(name, done))
        return usage if age <= WINDOW else None  # an old figure is no figure: it is being renewed

    def _finished(self, name: str, task: asyncio.Task[None]) -> None:
        self._refreshing.pop(name, None)
        if not task.cancelled() and task.exception() is not None:
            log.warning("usage of %s could not be read: %s", name, task.exception())

    async def _refresh(self, name: str, taken: float, gpus: list[str]) -> None:
        if time.monotonic() - taken > WINDOW:
            await self._runtime.usage(name)  # the start of a fresh CPU window
            await asyncio.sleep(1.0)
        sample = await self._runtime.usage(name)
        figures = await asyncio.to_thread(self._gpu_meter, gpus) if gpus and self._gpu_meter else None
        if sample is not None and figures is not None:
            sample = dataclasses.replace(sample, gpu_memory_bytes=figures[0], gpu_utilization=figures[1])
        now = time.monotonic()
        if sample is not None:
            self._samples[name] = (now, sample)
        for old in [n for n, (when, _) in self._samples.items() if now - when > FORGET]:
            del self._samples[old]

    async def stop(self) -> None:
        tasks = list(self._refreshing.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
