"""The users the platform serves, as domain objects, and a source that follows the users file.

The file's format lives in `emulator.users.file`; here each entry becomes a `User` (name, uid, gid,
groups) and tokens are checked in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from dataclasses import dataclass, field
from pathlib import Path

from emulator.core.models import Group, User
from emulator.errors import ConfigError
from emulator.users.file import read_users_file
from emulator.users.passwords import hash_password, verify_password

log = logging.getLogger(__name__)

DUMMY_HASH = hash_password("no such user")  # checked against when a name is unknown, for equal timing


@dataclass(frozen=True)
class UserDirectory:
    """The users the emulator knows, with their tokens."""

    users: tuple[User, ...]
    tokens: dict[str, str]  # user name -> token
    password_hashes: dict[str, str] = field(default_factory=dict)  # user name -> scrypt hash
    # Removed users whose sessions run on (`emulate users rm --keep-sessions`); any other user's end.
    keeps_sessions_of: frozenset[str] = frozenset()

    def authenticate(self, token: str) -> User | None:
        given = token.encode("utf-8", errors="replace")
        for user in self.users:
            if hmac.compare_digest(self.tokens[user.name].encode(), given):
                return user
        return None

    def sign_in(self, name: str, password: str) -> User | None:
        """The user whose name and password these are (a user without a password cannot sign in so).
        As slow for a name that does not exist: the answer's time tells nothing."""
        user = self.get(name)
        stored = self.password_hashes.get(name) if user is not None else None
        matched = verify_password(stored or DUMMY_HASH, password)
        return user if user is not None and stored is not None and matched else None

    def fingerprint(self, name: str) -> str:
        """Changes whenever the user's password or token does: sign-ins made before then lapse."""
        material = f"{name}|{self.password_hashes.get(name, '')}|{self.tokens.get(name, '')}"
        return hashlib.sha256(material.encode()).hexdigest()[:16]

    def get(self, name: str) -> User | None:
        return next((u for u in self.users if u.name == name), None)

    def removed(self, name: str) -> bool:
        """Whether `name`'s sessions must end: no longer a user, and not removed with their sessions kept."""
        return self.get(name) is None and name not in self.keeps_sessions_of

    @property
    def default(self) -> User:
        return self.users[0]


def load_directory(path: Path) -> UserDirectory:
    parsed = read_users_file(path)
    users = tuple(
        User(u.name, u.uid, u.gid, tuple(Group(g.name, g.gid) for g in u.groups), admin=bool(u.admin))
        for u in parsed.users
    )
    hashes = {u.name: u.password for u in parsed.users if u.password}
    kept = frozenset(r.name for r in parsed.retired if r.keep_sessions)
    tokens = {u.name: u.token for u in parsed.users}
    return UserDirectory(users=users, tokens=tokens, password_hashes=hashes, keeps_sessions_of=kept)


class UsersSource:
    """The users file, re-read when it changes so a workshop can add users without a restart.

    A change that breaks the file (a typo mid-edit, the file removed) is logged and the
    last good version stays in force, so the platform keeps serving its users.
    """

    def __init__(self, path: Path) -> None:
        self._path = path
        self._stamp: tuple[int, int, int] | None = None
        self._directory: UserDirectory | None = None

    def current(self) -> UserDirectory:
        try:
            stat = self._path.stat()
            stamp = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
            if self._directory is None or stamp != self._stamp:
                self._stamp = stamp
                self._directory = load_directory(self._path)
        except (OSError, ConfigError) as exc:
            if self._directory is None:
                raise ConfigError(str(exc)) from exc
            log.error("keeping the last good users file: %s", exc)
        return self._directory
