"""Waiting for a change to an image's folder that could change its image (watchfiles, the OS's file events).

What the build never sees is not a change: what `.dockerignore` leaves out, `.git`, and the folders that are
bind-mounted into the session (`emulate dev --mount`: edits there reach the session without a build); nor are
an editor's own files (swap files, backups: watchfiles' default filter), which saving leaves beside what was
saved. A burst of events (an editor's save is several) comes as one change, once the folder is quiet again.
Whether a change really changes the image is the build's to say: it compares the context's digest.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from docker.utils.build import PatternMatcher
from watchfiles import Change, DefaultFilter, watch

from emulator.host.builds import ignored_patterns

QUIET_MS = 50  # a change is reported once nothing has moved for this long (an editor's save is a burst)
LONGEST_MS = 1600  # ... or after this long, in a stream of changes that never pauses


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


def changes(folder: Path, wanted: Callable[[Change, str], bool], stop: threading.Event) -> Iterator[list[str]]:
    """Each change to `folder` that `wanted` keeps: the paths that changed, relative, sorted. Ends when `stop` is
    set; Ctrl-C (and any signal whose handler raises) comes out as KeyboardInterrupt."""
    folder = folder.resolve()
    for batch in watch(folder, watch_filter=wanted, debounce=LONGEST_MS, step=QUIET_MS, stop_event=stop):
        yield sorted({str(Path(path).relative_to(folder)) for _, path in batch})
