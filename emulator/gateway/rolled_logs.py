"""The files Caddy rolled its access log into, for a reader that fell behind by more than one roll.

Caddy's roller (lumberjack) renames a full `access.log` to `access-<time>.log`, the time of the roll in UTC to
the millisecond, begins a new `access.log`, then compresses the rolled one into `access-<time>.log.gz` (the
`.log` is removed once the `.gz` is whole) and keeps the newest `roll_keep` of them.
"""

from __future__ import annotations

import gzip
import re
import struct
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

_STAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}\.\d{3}")
_STAMP_FORMAT = "%Y-%m-%dT%H-%M-%S.%f"
_CHUNK = 1 << 20
MARGIN = timedelta(seconds=1)  # how long before its rename the roller may have named a file


@dataclass(frozen=True)
class Rolled:
    path: Path  # the uncompressed name (`.log`); `.log.gz` beside it once compressed
    when: datetime  # when it was rolled

    @property
    def compressed(self) -> Path:
        return self.path.with_name(self.path.name + ".gz")

    def size(self) -> int | None:
        """How many bytes it holds uncompressed (None: gone, or not a file of the roller's)."""
        try:
            return self.path.stat().st_size
        except FileNotFoundError:
            pass
        try:
            with self.compressed.open("rb") as packed:
                packed.seek(-4, 2)
                return int(struct.unpack("<I", packed.read(4))[0])  # gzip's trailer: the size, modulo 4 GiB
        except (FileNotFoundError, OSError, struct.error):
            return None

    def read(self) -> bytes:
        """All it holds (what could be read of one removed or cut short meanwhile: b"")."""
        try:
            return self.path.read_bytes()
        except FileNotFoundError:
            pass  # compressed meanwhile
        chunks = []
        try:
            with gzip.open(self.compressed, "rb") as unpacked:
                while chunk := unpacked.read(_CHUNK):
                    chunks.append(chunk)
        except (OSError, EOFError, zlib.error):  # gone, or not whole: what came before the break is kept
            pass
        return b"".join(chunks)


def rolled(path: Path) -> list[Rolled]:
    """The files `path` was rolled into that are still there, oldest first."""
    stem, suffix = path.stem + "-", path.suffix
    found = {}
    for entry in path.parent.glob(f"{stem}*{suffix}*"):
        name = entry.name.removesuffix(".gz")
        stamp = name[len(stem) : -len(suffix)] if name.endswith(suffix) else ""
        if _STAMP.fullmatch(stamp):
            when = datetime.strptime(stamp, _STAMP_FORMAT).replace(tzinfo=UTC)
            found[stamp] = Rolled(entry.with_name(name), when)
    return [found[stamp] for stamp in sorted(found)]


def rolled_after(path: Path, since: datetime, until: datetime, ours: int | None) -> list[Rolled]:
    """The files rolled after the one a reader held (`ours` bytes long: it read that one through its open handle)
    and before it opened the current one at `until`; `since`: when the name last held the reader's file, so
    that its roll is the first at or after then. The roller names a file just before renaming it, so a margin is
    left; what falls in it is older, and goes with ours. Without ours among them (unknown, or removed: more rolls
    than the roller keeps), all are read: a line read twice is no harm to
    the reader of visits (gateway/access_log.py), a line missed is."""
    candidates = [r for r in rolled(path) if since - MARGIN <= r.when < until]
    if ours is not None:
        for index, candidate in enumerate(candidates):
            if candidate.size() == ours:
                return candidates[index + 1 :]
    return candidates
