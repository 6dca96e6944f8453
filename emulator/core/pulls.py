"""Images pulled on demand, as the kubelet pulls them: one pull per image and credentials, shared by
every launch that waits for it, with its progress (layers and bytes) readable while it runs.

Credentials live only in the pull's key and task, in memory, for as long as the pull runs.
"""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass, field

from emulator.runtime.base import ImageInfo, PullUpdate, RegistryCredentials, Runtime

_DONE = ("Pull complete", "Already exists")
_HAVE_BYTES = ("Download complete", "Verifying Checksum", "Extracting", "Pull complete")


@dataclass
class _Layer:
    status: str = ""
    current: int = 0
    total: int = 0


@dataclass
class PullProgress:
    """How far one pull has come. Updated on the engine's worker thread as its stream arrives (under
    a lock, so the event loop is not woken for each of its many lines) and read on the loop."""

    image: str
    started: float = field(default_factory=time.monotonic)
    layers: dict[str, _Layer] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def update(self, update: PullUpdate) -> None:
        with self._lock:
            layer = self.layers.setdefault(update.layer, _Layer())
            layer.status = update.status
            if update.status == "Downloading" and update.total:
                layer.current, layer.total = update.current, update.total
            elif update.status in _HAVE_BYTES:
                layer.current = layer.total  # its bytes are all here; Extracting counts a different size

    def summary(self) -> dict[str, object]:
        """Layers done of all, and bytes downloaded of those known so far (layers present already have none)."""
        with self._lock:
            layers = [_Layer(x.status, x.current, x.total) for x in self.layers.values()]
        return {
            "image": self.image,
            "layers": {"done": sum(1 for x in layers if x.status in _DONE), "total": len(layers)},
            "bytes": {"current": sum(x.current for x in layers), "total": sum(x.total for x in layers)},
            "seconds": round(time.monotonic() - self.started, 1),
        }


@dataclass
class _Pull:
    task: asyncio.Task[ImageInfo]
    progress: PullProgress


PullKey = tuple[str, RegistryCredentials | None]  # one pull per image name and credentials


class ImagePulls:
    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime
        self._pulls: dict[PullKey, _Pull] = {}

    async def pull(self, reference: str, credentials: RegistryCredentials | None) -> ImageInfo:
        """The image, pulled now or by the pull of it already running with the same credentials.

        The same image with other credentials is another pull: sharing would let one person's
        secret serve another's launch."""
        key = (reference, credentials)
        pull = self._pulls.get(key)
        if pull is None:
            progress = PullProgress(reference)
            pulling = self._runtime.pull(reference, credentials, progress.update)
            task = asyncio.create_task(pulling, name=f"pull {reference}")
            pull = self._pulls[key] = _Pull(task, progress)
            task.add_done_callback(lambda done: self._finished(key, done))
        # Shielded: one waiting launch that is cancelled (its session deleted) never stops the others' pull.
        return await asyncio.shield(pull.task)

    def _finished(self, key: PullKey, task: asyncio.Task[ImageInfo]) -> None:
        self._pulls.pop(key, None)
        if not task.cancelled():
            task.exception()  # every waiter may have gone (their sessions deleted): the failure is theirs, not a log's

    def progress(self, key: PullKey) -> dict[str, object] | None:
        """How far the pull of this image with these credentials has come, or None when none runs."""
        pull = self._pulls.get(key)
        return pull.progress.summary() if pull else None
