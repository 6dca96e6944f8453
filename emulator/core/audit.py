"""The audit log: one JSON line for each thing a person did on the platform (a launch, renew or delete, a
sign-in or a failed one, a change to the users, an admin's action): who, what, when and from where.

It never holds a secret: a line takes the fields named here and plain values alone, and a field whose
name says it holds a secret (a password, a token, registry credentials) is refused outright, so no caller
can write one by mistake; a refusal's reason goes in as its first words only (`first_words`), never the
values a request carried. The service's file is rotated (10 MB, five kept); `emulate users` appends its
own lines to the same file (who ran it, on this machine), and only the service rotates it.

The file is its owner's alone (0600), and that owner is the state folder's: the service runs as root in its
container, and the person who runs `emulate users` on the host must still be able to append to it.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from io import TextIOWrapper
from logging.handlers import RotatingFileHandler
from pathlib import Path

MAX_BYTES = 10 * 1024 * 1024
KEEP = 5
SECRET_WORDS = ("password", "token", "secret", "auth", "cookie", "credential", "key")
MAX_VALUE = 200  # characters of one text value: what a caller typed never makes a line of megabytes
REASON_WORDS = 10

Value = str | int | float | bool | None


def _plain(value: Value) -> Value:
    if isinstance(value, str) and len(value) > MAX_VALUE:
        return value[: MAX_VALUE - 1] + "…"
    return value


def line(action: str, who: str | None, source: str | None, outcome: str = "ok", **details: Value) -> str:
    """One audit line: time, action, who, from, outcome, then `details` (plain values, none of them a secret)."""
    for name in details:
        if any(word in name.lower() for word in SECRET_WORDS):
            raise ValueError(f"an audit line never holds a secret: field '{name}'")
    record: dict[str, Value] = {
        "time": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "action": action,
        "who": _plain(who),
        "from": _plain(source),
        "outcome": outcome,
        **{name: _plain(value) for name, value in details.items()},
    }
    return json.dumps(record, ensure_ascii=False, separators=(",", ":"))


_ASSIGNMENT = re.compile(r"\S*=\S*")  # KEY=VALUE: an env entry's value may be anyone's secret


def first_words(message: str, withheld: Iterable[str] = ()) -> str:
    """A refusal's reason as an audit line keeps it: its first words, before any colon (after one, messages
    quote what the request sent), with no KEY=VALUE and none of the `withheld` values (a request's env
    values, its registry header) that it may still hold."""
    head = (message.strip().splitlines() or [""])[0].split(":", 1)[0]
    text = " ".join(_ASSIGNMENT.sub("…", head).split()[:REASON_WORDS])
    for value in withheld:
        if len(value) >= 3:
            text = text.replace(value, "…")
    return text


def _owned_like_its_folder(path: Path) -> None:
    """Root (the service in its container, `sudo emulate`) gives the file to the state folder's owner."""
    if os.geteuid() != 0:
        return
    folder = path.parent.stat()
    if folder.st_uid != 0:
        os.chown(path, folder.st_uid, folder.st_gid)


def _private(path: Path) -> None:
    """The file is made readable by its owner alone (it names who did what, and from where)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    existed = path.exists()
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600))
    if not existed:
        _owned_like_its_folder(path)


class _PrivateRotatingFile(RotatingFileHandler):
    """Each file it opens (the first, and the new one after a rotation) is made 0600 and owned as the folder."""

    def _open(self) -> TextIOWrapper:
        _private(Path(self.baseFilename))
        return super()._open()


class AuditLog:
    """The service's writer (thread-safe: logging's handler holds a lock around each write and rotation)."""

    def __init__(self, path: Path, max_bytes: int = MAX_BYTES, keep: int = KEEP) -> None:
        self.path = path
        self._logger = logging.Logger(f"skaha-emulator.audit.{path}")  # its own: never the root logger's handlers
        handler = _PrivateRotatingFile(path, maxBytes=max_bytes, backupCount=keep, encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(message)s"))
        self._handler = handler
        self._logger.addHandler(handler)
        self._logger.propagate = False

    def record(self, action: str, who: str | None, source: str | None, outcome: str = "ok", **details: Value) -> None:
        self._logger.info(line(action, who, source, outcome, **details))

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
