"""Reading the gateway's access log (gateway/caddy.py writes it): the requests it passed on to sessions.

Caddy appends one JSON line per answered request to the file and rolls it itself: at its size limit the file
is renamed (then compressed) and a new one begun. `LogTail` follows it as `tail -F` does: it keeps the file it
opened, finishes it once the name holds another, reads the files rolled after it should there be any (a file
rolled twice between two reads: gateway/rolled_logs.py), starts the new one from its top, starts over when the
file was truncated, keeps a partial last line until the rest of it comes, and waits while there is no file. A line
counts only when it names a session (`user_id`, which the route sets past its checks); everything else is skipped
without being parsed, so reading costs little however busy the portal is.
"""

from __future__ import annotations

import json
import os
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from emulator.gateway.base import SESSION_ID_PATTERN, Visit
from emulator.gateway.rolled_logs import rolled_after

MAX_LINE_BYTES = 64 << 10  # a "line" longer than any Caddy writes (headers are filtered out): not one of its lines
_UNMARKED = b'"user_id":""'  # a request that named no session (the portal, a refused caller, a probe's 404)
_SESSION_ID = re.compile(SESSION_ID_PATTERN)


def private(path: Path) -> None:
    """The log exists, readable by its owner alone, before Caddy opens it: Caddy 2.6 would create it 0644, and
    keeps the mode of the file it finds (its rolls copy it too)."""
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600))
    if path.stat().st_mode & 0o077:
        os.chmod(path, 0o600)


def visit(line: bytes) -> Visit | None:
    """The visit one access-log line records, or None (another request, or not a line of Caddy's)."""
    if _UNMARKED in line or b'"user_id"' not in line:
        return None
    try:
        record = json.loads(line)
        session_id, status = record["user_id"], int(record["status"])
        when = datetime.fromtimestamp(float(record["ts"]), UTC).replace(microsecond=0)
    except (ValueError, KeyError, TypeError, OverflowError):
        return None
    if not isinstance(session_id, str) or not _SESSION_ID.fullmatch(session_id):
        return None
    return Visit(session_id, when, status)


class LogTail:
    """The whole lines appended to a file that its writer rolls or truncates (the first read: all it holds)."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._file: BinaryIO | None = None
        self._identity: tuple[int, int] | None = None  # (device, inode) of the open file
        self._partial = b""
        self._seen_at: datetime | None = None  # when the name last held the open file (None: never opened one)

    def lines(self) -> list[bytes]:
        found = self._drain() if self._file is not None else []
        looked = datetime.now(UTC)  # before the look: the open file, still at the name then, rolls after it
        try:
            now = os.stat(self._path)
        except FileNotFoundError:  # none yet, or rolled and the new file not made yet: it is read when it comes
            return found
        if self._file is None or (now.st_dev, now.st_ino) != self._identity:
            return found + self._follow()
        if os.fstat(self._file.fileno()).st_size < self._file.tell():
            self._file.seek(0)  # truncated: its writer starts over at the top
            self._partial = b""
            found += self._drain()
        self._seen_at = looked
        return found

    def close(self) -> None:
        self._close()

    def _follow(self) -> list[bytes]:
        """The name holds another file: the rest of ours (written between the read above and its roll), the files
        rolled after it, should it have rolled more than once since the last read, then the new one from its top."""
        found, ours = [], None
        if self._file is not None:
            found = self._drain()
            ours = self._file.tell()  # its whole length: nothing is written to a file once rolled
            self._close()
        if not self._open():
            return found  # (the files rolled meanwhile are read once there is a new one)
        opened = datetime.now(UTC)  # after the open: a file rolled before it is not the one now open
        if self._seen_at is not None:
            for roll in rolled_after(self._path, self._seen_at, opened, ours):
                *whole, _cut = roll.read().split(b"\n")
                found += whole
        self._seen_at = opened
        return found + self._drain()

    def _open(self) -> bool:
        try:
            self._file = open(self._path, "rb")  # noqa: SIM115 (held open across calls: it is closed in _close)
        except FileNotFoundError:
            return False
        stat = os.fstat(self._file.fileno())
        self._identity = (stat.st_dev, stat.st_ino)
        return True

    def _close(self) -> None:
        if self._file is not None:
            self._file.close()
        self._file, self._identity, self._partial = None, None, b""

    def _drain(self) -> list[bytes]:
        assert self._file is not None
        data = self._file.read()
        if not data:
            return []
        *whole, self._partial = (self._partial + data).split(b"\n")
        if len(self._partial) > MAX_LINE_BYTES:
            self._partial = b""
        return whole


class CaddyAccessLog:
    """The gateway's access log (gateway/base.py's AccessLog) at `path`, on this machine."""

    def __init__(self, path: Path) -> None:
        if path.parent.is_dir():
            private(path)
        self._tail = LogTail(path)

    def read(self) -> list[Visit]:
        return [found for line in self._tail.lines() if (found := visit(line)) is not None]

    def close(self) -> None:
        self._tail.close()
