"""A full disk said in words: the watch's threshold, and which failures mean the disk is full."""

from __future__ import annotations

import errno
import sqlite3
from pathlib import Path

import pytest

from emulator.core.disk import DiskWatch, is_disk_full
from emulator.errors import DiskFull, EngineError


def test_launches_wait_for_free_space_on_every_disk_named(tmp_path: Path) -> None:
    DiskWatch({"/arc": tmp_path / "not-made-yet" / "arc"}, min_free_gb=0).check()
    with pytest.raises(DiskFull, match=r"nearly full \(\d+\.\d\d GB free under the state; a launch needs 1e\+06 GB\)"):
        DiskWatch({"the state": tmp_path, "/arc": tmp_path / "arc"}, min_free_gb=1e6).check()


@pytest.mark.parametrize(
    "failure",
    [
        OSError(errno.ENOSPC, "No space left on device"),
        OSError(errno.EDQUOT, "Disk quota exceeded"),
        sqlite3.OperationalError("database or disk is full"),
        EngineError("write /var/lib/docker/tmp/x: no space left on device"),
    ],
)
def test_what_counts_as_a_full_disk(failure: Exception) -> None:
    assert is_disk_full(failure)


@pytest.mark.parametrize(
    "failure", [OSError(errno.EACCES, "Permission denied"), sqlite3.OperationalError("database is locked"), KeyError()]
)
def test_what_does_not(failure: Exception) -> None:
    assert not is_disk_full(failure)
