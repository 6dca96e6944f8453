"""The audit log: one JSON line for each thing a person did on the platform (a launch, renew or delete, a
sign-in or a failed one, a change to the users, an admin's action): who, what, when and from where.

It never holds a secret: a line takes the fields named here and plain values alone, and a field whose
name says it holds a secret (a password, a token, registry credentials) is refused outright, so no caller
can write one by mistake. The service's file is rotated (10 MB, five kept); `emulate users` appends its
own lines to the same file (who ran it, on this machine), and only the service rotates it.
"""

from __future__ import annotations

import json
import logging
import os
from datetime import UTC, datetime
from logging.handlers import RotatingFileHandler
from pathlib import Path

MAX_BYTES = 10 * 1024 * 1024
KEEP = 5
SECRET_WORDS = ("password", "token", "secret", "auth", "cookie", "credential", "key")

Value = str | int | float | bool | None


def line(action: str, who: str | None, source: str | None, outcome: str = "ok", **details: Value) -> str:
    """One audit line: time, action, who, from, outcome, then `details` (plain values, none of them a secret)."""
    for name in details:
        if any(word in name.lower() for word in SECRET_WORDS):
            raise ValueError(f"an audit line never holds a secret: field '{name}'")
    record: dict[str, Value] = {
        "time": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "action": action,
        "who": who,
        "from": source,
        "outcome": outcome,
        **details,
    }
    return json.dumps(record, ensure_ascii=False, separators=(",", ":"))


def _private(path: Path) -> None:
    """The file is made readable by its owner alone (it names who did what, and from where)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600))


class AuditLog:
    """The service's writer (thread-safe: logging's handler holds a lock around each write and rotation)."""

    def __init__(self, path: Path, max_bytes: int = MAX_BYTES, keep: int = KEEP) -> None:
        _private(path)
        self.path = path
        self._logger = logging.Logger(f"skaha-emulator.audit.{path}")  # its own: never the root logger's handlers
        handler = RotatingFileHandler(path, maxBytes=max_bytes, backupCount=keep, encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(message)s"))
        self._handler = handler
        self._logger.addHandler(handler)
        self._logger.propagate = False

    def record(self, action: str, who: str | None, source: str | None, outcome: str = "ok", **details: Value) -> None:
        self._logger.info(line(action, who, source, outcome, **details))
        for rotated in [self.path, *(self.path.with_name(f"{self.path.name}.{n}") for n in range(1, KEEP + 1))]:
            if rotated.exists() and rotated.stat().st_mode & 0o077:
                os.chmod(rotated, 0o600)  # a new file after a rotation: the owner's alone too

    def close(self) -> None:
        self._handler.close()


def append(path: Path, action: str, who: str | None, source: str | None, outcome: str = "ok", **details: Value) -> None:
    """One line from another process (`emulate users`), appended whole (O_APPEND, one write); the service's
    writer rotates the file."""
    _private(path)
    descriptor = os.open(path, os.O_WRONLY | os.O_APPEND)
    try:
        os.write(descriptor, (line(action, who, source, outcome, **details) + "\n").encode())
    finally:
        os.close(descriptor)
