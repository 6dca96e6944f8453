"""Memory and CPU in use by each running session, sampled in the background.

As metrics-server feeds `kubectl top`: asking the engine on every API call would cost about a
second a session, so listings read the last sample instead.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from emulator.core.models import Session, Status
from emulator.core.store import Store
from emulator.runtime.base import Runtime, Usage

USAGE_INTERVAL = 5.0  # seconds between samples


class UsageSampler:
    def __init__(self, store: Store, runtime: Runtime, container_of: Callable[[Session], str]) -> None:
        self._store = store
        self._runtime = runtime
        self._container_of = container_of
        self._samples: dict[str, Usage] = {}

    async def refresh(self) -> None:
        """Sample every Running session (concurrently); forget the rest."""
        names = [self._container_of(s) for s in self._store.sessions() if s.status is Status.RUNNING]
        samples = await asyncio.gather(*(self._runtime.usage(name) for name in names))
        self._samples = {name: sample for name, sample in zip(names, samples, strict=True) if sample is not None}

    def of(self, session: Session) -> Usage | None:
        """The last sample of a Running session, else None."""
        if session.status is not Status.RUNNING:
            return None
        return self._samples.get(self._container_of(session))
