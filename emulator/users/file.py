"""The users file (users.yaml, mode 0600): who may use the platform, their POSIX identity and API tokens.

This module knows the file alone (its format, creating it, reading a token) and imports nothing
from the brain, so the CLI can find a token without loading the service's code. The file is
created on first use with one user: the invoking OS user (name, uid, gid, groups). A workshop adds
more users with `emulate users` (emulator.users.accounts); `emulate users token NAME` prints each one's
token. Sessions never run as root: when the emulator is run by root, the default user is
$SUDO_USER, else a `canfar` user with uid 20001.
"""

from __future__ import annotations

import grp
import os
import pwd
import secrets
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field

from emulator.errors import ConfigError
from emulator.yamlfile import read_model

FALLBACK_USER = "canfar"
FALLBACK_UID = 20001


def new_token() -> str:
    return secrets.token_urlsafe(32)


class GroupEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    gid: int = Field(ge=1)


class UserEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^[a-z_][a-z0-9_.-]{0,31}$")
    uid: int = Field(ge=1, description="Sessions never run as root.")
    gid: int = Field(ge=1)
    groups: list[GroupEntry] = Field(default_factory=list)
    token: str = Field(min_length=16)
    password: str | None = None  # a salted scrypt hash (`emulate users passwd`), never the password itself
    # May see and act on everyone's sessions (the admin page and API, `emulate broadcast`, `emulate usage`).
    # Written only when true: None and false mean the same.
    admin: bool | None = None


class RetiredUser(BaseModel):
    """A removed user: their ids stay theirs (a re-added name gets them back, no one else ever does), and
    their sessions are ended by the service unless `keep_sessions`."""

    model_config = ConfigDict(extra="forbid")
    name: str
    uid: int = Field(ge=1)
    gid: int = Field(ge=1)
    keep_sessions: bool = False


class UsersFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    # High-water marks (`emulate users` keeps them): the uid the next user and the gid the next shared
    # group get, so that a removed user's uid (which owns their kept /arc/home) or a gone group's gid
    # is never given to someone else. Absent from older files and hand-written ones: emulator.users.accounts
    # then counts from the ids in the file, and writes the marks on its next edit.
    next_uid: int | None = Field(default=None, ge=1)
    next_gid: int | None = Field(default=None, ge=1)
    users: list[UserEntry] = Field(min_length=1)
    retired: list[RetiredUser] = Field(default_factory=list)

    def admin_token(self, source: Path) -> str:
        """The token of the first admin, for the CLI's admin commands (`emulate broadcast`, `emulate usage`)."""
        entry = next((u for u in self.users if u.admin), None)
        if entry is None:
            raise ConfigError(f"no admin in {source}: make one with `emulate users admin NAME`")
        return entry.token

    def token_for(self, name: str | None, source: Path) -> str:
        """The token of the named user (default: the first), or a ConfigError naming the file."""
        entry = next((u for u in self.users if u.name == name), None) if name else self.users[0]
        if entry is None:
            raise ConfigError(f"no user named {name} in {source}")
        return entry.token


def default_user_entry() -> UserEntry:
    """Who sessions run as by default: you; as root, $SUDO_USER, else the `canfar` user (uid 20001). The person
    who started the platform runs it: they are its first admin."""
    uid = os.getuid()
    if uid == 0:
        sudo_user = os.environ.get("SUDO_USER")
        if sudo_user and sudo_user != "root":
            record = pwd.getpwnam(sudo_user)
        else:
            groups = [GroupEntry(name=FALLBACK_USER, gid=FALLBACK_UID)]
            return UserEntry(
                name=FALLBACK_USER, uid=FALLBACK_UID, gid=FALLBACK_UID, groups=groups, token=new_token(), admin=True
            )
    else:
        record = pwd.getpwuid(uid)
    gids = os.getgrouplist(record.pw_name, record.pw_gid)
    groups = []
    for gid in dict.fromkeys(gids):
        if gid == 0:
            continue
        try:
            groups.append(GroupEntry(name=grp.getgrgid(gid).gr_name, gid=gid))
        except KeyError:
            groups.append(GroupEntry(name=f"g{gid}", gid=gid))
    return UserEntry(
        name=record.pw_name, uid=record.pw_uid, gid=record.pw_gid, groups=groups, token=new_token(), admin=True
    )


def ensure_users_file(path: Path) -> None:
    """Create the users file with the default user if it does not exist yet (mode 0600).

    Written whole beside it, then linked into place: a command started at the same moment (`up` and `token`,
    say) finds either no file or the whole file, never one half written, and never replaces another's."""
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    document = UsersFile(users=[default_user_entry()]).model_dump(exclude_none=True)
    partial = path.with_name(f".{path.name}.{secrets.token_hex(6)}.new")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write("# skaha-emulator users: add entries for more users; keep this file private (0600).\n")
            yaml.safe_dump(document, handle, sort_keys=False)
        try:
            os.link(partial, path)
        except FileExistsError:
            pass  # made meanwhile by another command: theirs stays
        except OSError:  # a filesystem without hard links: a rename is whole too, if not exclusive
            if not path.exists():
                os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def read_users_file(path: Path) -> UsersFile:
    """The parsed file; every problem (unreadable, invalid, duplicate names or tokens) is a ConfigError."""
    parsed = read_model(path, UsersFile, "users file", "; `emulate token` creates it")
    for field in ("name", "token"):
        values = [getattr(u, field) for u in parsed.users]
        if len(set(values)) != len(values):
            raise ConfigError(f"users file {path} is invalid: every user needs a {field} of its own")
    return parsed
