"""Waiting for a change to an image's folder that could change its image (watchfiles, the OS's file events).

What the build never sees is not a change: what `.dockerignore` leaves out, `.git`, and the folders that are
bind-mounted into the session (`emulate dev --mount`: edits there reach the session without a build); nor are
an editor's own files (swap files, backups: watchfiles' default filter), which saving leaves beside what was
saved. A burst of events (an editor's save is several) comes as one change, once the folder is quiet again.
Whether a change really changes the image is the build's to say: it compares the context's digest.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from docker.utils.build import PatternMatcher
from watchfiles import Change, DefaultFilter, watch

from emulator.host.builds import ignored_patterns

QUIET_MS = 50  # a change is reported once nothing has moved for this long (an editor's save is a burst)
LONGEST_MS = 1600  # ... or after this long, in a stream of changes that never pauses
WAKE = 0.5  # seconds a wait for a change sleeps at a time (Ctrl-C is seen between)


class ChangeFilter:
    """Whether an event in `folder` may change its image (watchfiles' `watch_filter`)."""

    def __init__(self, folder: Path, skipped: Sequence[Path], dockerfile: str = "Dockerfile") -> None:
        self._folder = folder.resolve()
        self._skipped = [path.resolve() for path in skipped]
        self._dockerfile = dockerfile
        self._seen: tuple[int, int] | None = None  # .dockerignore's (mtime, size) when its patterns were read
        self._matcher = PatternMatcher([])
        self._editors = DefaultFilter()  # .git, swap files, backups, caches, .venv...

    def _ignoring(self) -> PatternMatcher:
        """`.dockerignore`'s patterns, read again when it changed (as the build will read it)."""
        ignore = self._folder / ".dockerignore"
        try:
            info = ignore.stat()
            seen: tuple[int, int] | None = (info.st_mtime_ns, info.st_size)
        except OSError:
            seen = None
        if seen != self._seen:
            self._seen = seen
            self._matcher = PatternMatcher([*ignored_patterns(self._folder), f"!{self._dockerfile}"])
        return self._matcher

    def __call__(self, change: Change, path: str) -> bool:
        where = Path(path)
        try:
            relative = where.relative_to(self._folder)
        except ValueError:
            return False
        if not self._editors(change, path):
            return False
        if any(where == skipped or skipped in where.parents for skipped in self._skipped):
            return False
        return str(relative) in (".dockerignore", self._dockerfile) or not self._ignoring().matches(str(relative))


class FolderWatch:
    """The changes to a folder that `wanted` keeps, watched on a thread of its own from the moment it is made (so
    an edit saved while a build runs is not lost), until `close`."""

    def __init__(self, folder: Path, wanted: Callable[[Change, str], bool]) -> None:
        self._folder = folder.resolve()
        self._wanted = wanted
        self._stop = threading.Event()
        self._batches: queue.Queue[set[str]] = queue.Queue()
        self._thread = threading.Thread(target=self._watch, name="watch", daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        batches = watch(
            self._folder,
            watch_filter=self._wanted,
            debounce=LONGEST_MS,
            step=QUIET_MS,
            stop_event=self._stop,
            raise_interrupt=False,  # signals are the main thread's
        )
        for batch in batches:
            self._batches.put({str(Path(path).relative_to(self._folder)) for _, path in batch})

    def next(self, timeout: float | None = None) -> list[str]:
        """The paths that changed (relative, sorted) since the last call, once there are any: every change seen
        meanwhile, as one ([] when `timeout` passed first). Ctrl-C interrupts the wait."""
        deadline = None if timeout is None else time.monotonic() + timeout
        found: set[str] = set()
        while not found:
            wait = WAKE if deadline is None else min(WAKE, deadline - time.monotonic())
            if wait <= 0:
                return []
            try:
                found = self._batches.get(timeout=wait)
            except queue.Empty:
                continue
        while not self._batches.empty():
            found |= self._batches.get_nowait()
        return sorted(found)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
