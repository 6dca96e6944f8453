"""`emulate users`: add, remove and re-password users, and import a room of them, in the users file.

Every change is a read-modify-write under an exclusive lock, written to a temporary file and
renamed over the old one (mode 0600), so the service (which re-reads the file when it changes)
never sees half a file and two administrators never lose each other's changes. New users get
the next free uid from 20001 (their own group has the same id) and shared groups a gid from
30001, reused by name across users.
"""

from __future__ import annotations

import csv
import fcntl
import io
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import yaml

from emulator.errors import ConfigError
from emulator.passwords import hash_password, new_password
from emulator.users import GroupEntry, UserEntry, UsersFile, ensure_users_file, new_token, read_users_file

FIRST_UID = 20001
FIRST_GROUP_GID = 30001
GROUP_NAME = re.compile(r"[a-z_][a-z0-9_.-]{0,31}")


@dataclass(frozen=True)
class Credentials:
    name: str
    uid: int
    groups: list[str]
    password: str
    token: str


@contextmanager
def _editing(path: Path) -> Iterator[UsersFile]:
    ensure_users_file(path)
    lock = path.with_name(f".{path.name}.lock")
    with open(lock, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        document = read_users_file(path)
        yield document
        UsersFile.model_validate(document.model_dump())  # never write a file the service would refuse
        draft = path.with_name(f".{path.name}.new")
        fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write("# skaha-emulator users (emulate users ...); keep this file private (0600).\n")
            yaml.safe_dump(document.model_dump(exclude_none=True), out, sort_keys=False)
            out.flush()
            os.fsync(out.fileno())
        os.replace(draft, path)


def _group(document: UsersFile, name: str) -> GroupEntry:
    """The shared group of that name as the file already knows it, or a new one with the next free gid.

    Names follow the user-name rule (they name folders under /arc/projects), and never a user's own
    group or a system group a user brought along (gid below 30001): sharing that would open sessions
    to people nobody meant to share with."""
    if not GROUP_NAME.fullmatch(name):
        raise ConfigError(f"'{name}' is not a valid group name (a-z, 0-9, '_', '.', '-'; up to 32)")
    if any(u.name == name for u in document.users):
        raise ConfigError(f"'{name}' is a user's name; a shared group needs a name of its own")
    for user in document.users:
        for group in user.groups:
            if group.name == name:
                if group.gid < FIRST_GROUP_GID:
                    raise ConfigError(f"group '{name}' is a system group (gid {group.gid}); choose another name")
                return group
    taken = {g.gid for u in document.users for g in u.groups} | {u.gid for u in document.users}
    gid = max([FIRST_GROUP_GID - 1, *(g for g in taken if g >= FIRST_GROUP_GID)]) + 1
    return GroupEntry(name=name, gid=gid)


def _add(document: UsersFile, name: str, groups: list[str]) -> Credentials:
    if any(u.name == name for u in document.users):
        raise ConfigError(f"there is a user named {name} already")
    if any(g.name == name and g.gid != u.gid for u in document.users for g in u.groups):
        raise ConfigError(f"'{name}' is a shared group's name; a user needs a name of its own")
    if name in groups:
        raise ConfigError(f"{name} is the user's own group; name other groups")
    taken = {u.uid for u in document.users} | {u.gid for u in document.users}
    taken |= {g.gid for u in document.users for g in u.groups}
    uid = FIRST_UID
    while uid in taken:
        uid += 1
    shared = [_group(document, group) for group in dict.fromkeys(groups)]
    password, token = new_password(), new_token()
    entry = UserEntry(
        name=name,
        uid=uid,
        gid=uid,
        groups=[GroupEntry(name=name, gid=uid), *shared],
        token=token,
        password=hash_password(password),
    )
    document.users.append(entry)
    return Credentials(name, uid, [g.name for g in shared], password, token)


def add_user(path: Path, name: str, groups: list[str]) -> Credentials:
    """A new user with a generated password (the file keeps only its hash) and an API token."""
    try:
        UserEntry(name=name, uid=FIRST_UID, gid=FIRST_UID, token="x" * 16)
    except ValueError:
        raise ConfigError(f"'{name}' is not a valid user name (a-z, 0-9, '_', '.', '-'; up to 32)") from None
    with _editing(path) as document:
        return _add(document, name, groups)


def remove_user(path: Path, name: str) -> None:
    with _editing(path) as document:
        kept = [u for u in document.users if u.name != name]
        if len(kept) == len(document.users):
            raise ConfigError(f"no user named {name}")
        if not kept:
            raise ConfigError("the users file must keep at least one user")
        document.users[:] = kept


def set_password(path: Path, name: str, password: str | None = None) -> str:
    """Give the user a new password (a generated one unless given); returns it."""
    password = password or new_password()
    with _editing(path) as document:
        entry = next((u for u in document.users if u.name == name), None)
        if entry is None:
            raise ConfigError(f"no user named {name}")
        entry.password = hash_password(password)
    return password


def import_users(path: Path, table: str) -> list[Credentials]:
    """Users from CSV rows `name[,group[;group...]]` (a header row `name,groups` may lead); all or none."""
    rows = [row for row in csv.reader(io.StringIO(table)) if row and any(cell.strip() for cell in row)]
    if rows and rows[0][0].strip().lower() == "name":
        rows = rows[1:]
    if not rows:
        raise ConfigError("no users in the file (rows: name,group;group)")
    made = []
    with _editing(path) as document:
        for number, row in enumerate(rows, start=1):
            name = row[0].strip()
            groups = [g.strip() for cell in row[1:] for g in cell.split(";") if g.strip()]
            try:
                UserEntry(name=name, uid=FIRST_UID, gid=FIRST_UID, token="x" * 16)
                made.append(_add(document, name, groups))
            except (ConfigError, ValueError) as exc:
                detail = exc.message if isinstance(exc, ConfigError) else f"'{name}' is not a valid user name"
                raise ConfigError(f"row {number}: {detail}; nothing was imported") from None
    return made


def sheet(credentials: list[Credentials], url: str) -> str:
    """A printable page of credentials, one block a user, for a workshop's handouts."""
    blocks = []
    for c in credentials:
        blocks.append(
            f"{c.name}\n  sign in at {url}/science-portal/\n  user      {c.name}\n  password  {c.password}\n"
            f"  groups    {', '.join(c.groups) or '-'}\n  API token {c.token}\n"
        )
    return "\n".join(blocks)
