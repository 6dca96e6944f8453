"""Users, their POSIX identity and their API tokens (users.yaml, mode 0600).

The file is created on first use with one user: the invoking OS user (name, uid,
gid, groups). A workshop adds more users by adding entries; `emulate token --user`
prints each one's token. Sessions never run as root: when the emulator is run by
root, the default user is $SUDO_USER, else a `canfar` user with uid 20001.
"""

from __future__ import annotations

import grp
import hmac
import logging
import os
import pwd
from dataclasses import dataclass
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field

from emulator.core.models import Group, User
from emulator.errors import ConfigError
from emulator.naming import new_token
from emulator.yamlfile import read_model

log = logging.getLogger("emulator.identity")

FALLBACK_USER = "canfar"
FALLBACK_UID = 20001


class _GroupEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    gid: int = Field(ge=1)


class _UserEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^[a-z_][a-z0-9_.-]{0,31}$")
    uid: int = Field(ge=1, description="Sessions never run as root.")
    gid: int = Field(ge=1)
    groups: list[_GroupEntry] = Field(default_factory=list)
    token: str = Field(min_length=16)


class _UsersFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    users: list[_UserEntry] = Field(min_length=1)


def _default_entry() -> _UserEntry:
    uid = os.getuid()
    if uid == 0:
        sudo_user = os.environ.get("SUDO_USER")
        if sudo_user and sudo_user != "root":
            record = pwd.getpwnam(sudo_user)
        else:
            groups = [_GroupEntry(name=FALLBACK_USER, gid=FALLBACK_UID)]
            return _UserEntry(name=FALLBACK_USER, uid=FALLBACK_UID, gid=FALLBACK_UID, groups=groups, token=new_token())
    else:
        record = pwd.getpwuid(uid)
    gids = os.getgrouplist(record.pw_name, record.pw_gid)
    groups = []
    for gid in dict.fromkeys(gids):
        if gid == 0:
            continue
        try:
            groups.append(_GroupEntry(name=grp.getgrgid(gid).gr_name, gid=gid))
        except KeyError:
            groups.append(_GroupEntry(name=f"g{gid}", gid=gid))
    return _UserEntry(name=record.pw_name, uid=record.pw_uid, gid=record.pw_gid, groups=groups, token=new_token())


def ensure_users_file(path: Path) -> None:
    """Create the users file with the default user if it does not exist yet (mode 0600)."""
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    document = _UsersFile(users=[_default_entry()]).model_dump()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write("# skaha-emulator users: add entries for more users; keep this file private (0600).\n")
        yaml.safe_dump(document, handle, sort_keys=False)


@dataclass(frozen=True)
class Directory:
    """The users the emulator knows, with their tokens."""

    users: tuple[User, ...]
    tokens: dict[str, str]  # user name -> token

    def authenticate(self, token: str) -> User | None:
        for user in self.users:
            if hmac.compare_digest(self.tokens[user.name].encode(), token.encode()):
                return user
        return None

    def get(self, name: str) -> User | None:
        return next((u for u in self.users if u.name == name), None)

    def token_for(self, name: str | None, source: Path) -> str:
        """The token of the named user (default: the first), or a ConfigError naming the file."""
        user = self.get(name) if name else self.default
        if user is None:
            raise ConfigError(f"no user named {name} in {source}")
        return self.tokens[user.name]

    @property
    def default(self) -> User:
        return self.users[0]


def load_directory(path: Path) -> Directory:
    parsed = read_model(path, _UsersFile, "users file", "; `emulate token` creates it")
    for field in ("name", "token"):
        values = [getattr(u, field) for u in parsed.users]
        if len(set(values)) != len(values):
            raise ConfigError(f"users file {path} is invalid: every user needs a {field} of its own")
    users = tuple(User(u.name, u.uid, u.gid, tuple(Group(g.name, g.gid) for g in u.groups)) for u in parsed.users)
    return Directory(users=users, tokens={u.name: u.token for u in parsed.users})


class UsersSource:
    """The users file, re-read when it changes so a workshop can add users without a restart.

    A change that breaks the file (a typo mid-edit, the file removed) is logged and the
    last good version stays in force, so the platform keeps serving its users.
    """

    def __init__(self, path: Path) -> None:
        self._path = path
        self._stamp: tuple[int, int, int] | None = None
        self._directory: Directory | None = None

    def current(self) -> Directory:
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
