"""A full disk, said in words: launches refused while the disks the platform writes to are nearly full,
and any write that fails for want of space named as such.

What fills a server's disk is what its users write (/arc, the sessions' layers and logs, which share the
engine's disk) and the platform's own state (the database, each session's files). A launch adds to all of
them, so none starts while the disk under /arc or the state folder has less than EMULATE_MIN_FREE_GB free;
what runs keeps running, the API keeps answering, and SQLite (which never corrupts on a failed write)
keeps its last good state.
"""

from __future__ import annotations

import errno
import shutil
import sqlite3
from collections.abc import Mapping
from pathlib import Path

from emulator.errors import DiskFull

GB = 1024**3
_NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


def disk_full_words(what: str) -> str:
    return f"the server's disk is full ({what}): delete files or ask the operator to free space"


def is_disk_full(exc: BaseException) -> bool:
    """A write refused for want of space: the OS's ENOSPC or EDQUOT, SQLite's "database or disk is full",
    or an engine saying "no space left on device"."""
    if isinstance(exc, OSError) and exc.errno in _NO_SPACE:
        return True
    if isinstance(exc, sqlite3.OperationalError) and "disk is full" in str(exc):
        return True
    message = getattr(exc, "message", None) or str(exc)
    return "no space left on device" in message.lower()


class DiskWatch:
    def __init__(self, folders: Mapping[str, Path], min_free_gb: float) -> None:
        self._folders = dict(folders)  # what it is (said to the user) -> a folder on that disk
        self._min_free = int(min_free_gb * GB)

    def check(self, doing: str = "a launch") -> None:
        """DiskFull when any of the disks has less than the minimum free (a folder not made yet: its parent);
        `doing`: what needs the room, in the message."""
        for what, folder in self._folders.items():
            existing = next((p for p in (folder, *folder.parents) if p.exists()), None)
            if existing is None:
                continue
            free = shutil.disk_usage(existing).free
            if free < self._min_free:
                raise DiskFull(
                    f"the server's disk is nearly full ({free / GB:.2f} GB free under {what}; {doing} needs "
                    f"{self._min_free / GB:g} GB): delete files or ask the operator to free space"
                )
