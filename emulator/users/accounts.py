"""`emulate users`: add, remove and re-password users, rotate their tokens, and import a room of them.

Every change is a read-modify-write under an exclusive lock, written to a temporary file and
renamed over the old one (mode 0600), so the service (which re-reads the file when it changes)
never sees half a file and two administrators never lose each other's changes.

Ids are never handed out twice: a removed user's /arc/home (and a removed group's /arc/projects
folder) is kept, owned by their id, so whoever got that id next would own it. The file keeps two
high-water marks, `next_uid` and `next_gid`; a new id is above its mark and above every id of its
range in the file (which also gives a file from before the marks, or edited by hand, safe marks on
its next edit). The ranges cannot collide: a new user gets a uid from 20001 to 30000 (their own
group has the same id) and a new shared group a gid from 30001 to 59999, so no uid is ever a shared
group's gid; when a range is spent, adding is refused rather than spilling into the next one
(60000-65535 is Debian's: 65534 is nobody/nogroup in the session images). A shared group is reused
by name while any user is in it.
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
from emulator.users.file import (
    GroupEntry,
    RetiredUser,
    UserEntry,
    UsersFile,
    ensure_users_file,
    new_token,
    read_users_file,
)
from emulator.users.passwords import hash_password, new_password

FIRST_UID = 20001
FIRST_GROUP_GID = 30001
LAST_UID = FIRST_GROUP_GID - 1  # users' uids stay below the shared groups' gids: the two never meet
LAST_GROUP_GID = 59999  # Debian keeps 60000-65535 (65534: nobody, nogroup)
GROUP_NAME = re.compile(r"[a-z_][a-z0-9_.-]{0,31}")

# The system accounts and groups (ids below 1000) of the session images, from Debian bookworm's
# base-passwd (/usr/share/base-passwd/passwd.master and group.master; gnats from releases before
# bookworm). A user or shared group of one of these names would take the image's line's place in
# the session's /etc/passwd or /etc/group (emulator.core.contract), so such names are refused.
SYSTEM_USERS = frozenset((
    "root", "daemon", "bin", "sys", "sync", "games", "man", "lp", "mail", "news", "uucp", "proxy", "www-data",
    "backup", "list", "irc", "gnats", "nobody", "_apt",
))  # fmt: skip
SYSTEM_GROUPS = frozenset((
    "root", "daemon", "bin", "sys", "adm", "tty", "disk", "lp", "mail", "news", "uucp", "man", "proxy", "kmem",
    "dialout", "fax", "voice", "cdrom", "floppy", "tape", "sudo", "audio", "dip", "www-data", "backup", "operator",
    "list", "irc", "src", "gnats", "shadow", "utmp", "video", "sasl", "plugdev", "staff", "games", "users",
    "nogroup",
))  # fmt: skip


@dataclass(frozen=True)
class Credentials:
    name: str
    uid: int
    groups: list[str]
    password: str
    token: str
    admin: bool = False


@dataclass(frozen=True)
class Reset:
    password: str
    token: str | None  # the user's new API token; None when they kept theirs


@contextmanager
def _editing(path: Path) -> Iterator[UsersFile]:
    ensure_users_file(path)
    lock = path.with_name(f".{path.name}.lock")
    with open(lock, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        document = read_users_file(path)
        # Marks first, before any change: a file from before the marks must count the ids of the
        # user this edit removes, or the next `users add` would hand them out again.
        document.next_uid, document.next_gid = _next_uid(document), _next_gid(document)
        yield document
        UsersFile.model_validate(document.model_dump())  # never write a file the service would refuse
        draft = path.with_name(f".{path.name}.new")
        fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write("# skaha-emulator users (emulate users ...); keep this file private (0600).\n")
            out.write("# next_uid, next_gid: the ids the next user and shared group get (ids are never reused).\n")
            yaml.safe_dump(document.model_dump(exclude_none=True), out, sort_keys=False)
            out.flush()
            os.fsync(out.fileno())
        os.replace(draft, path)


def _ids(document: UsersFile) -> set[int]:
    ids = {i for u in document.users for i in (u.uid, u.gid, *(g.gid for g in u.groups))}
    return ids | {i for r in document.retired for i in (r.uid, r.gid)}


def _next_id(document: UsersFile, mark: int | None, first: int, last: int) -> int:
    """The next id of the range [first, last]: above the mark and above every id of the range in the file
    (ids outside it, a host user's or group's, cannot meet an id of the range)."""
    return max([first, mark or 0, *(i + 1 for i in _ids(document) if first <= i <= last)])


def _next_uid(document: UsersFile) -> int:
    return _next_id(document, document.next_uid, FIRST_UID, LAST_UID)


def _next_gid(document: UsersFile) -> int:
    return _next_id(document, document.next_gid, FIRST_GROUP_GID, LAST_GROUP_GID)


def _take_uid(document: UsersFile) -> int:
    uid = _within(_next_uid(document), LAST_UID, f"no uid left for a new user: {FIRST_UID}-{LAST_UID}")
    document.next_uid = uid + 1
    return uid


def _take_gid(document: UsersFile) -> int:
    """A gid of its own for a new shared group, even for several made before any is written."""
    gid = _within(
        _next_gid(document), LAST_GROUP_GID, f"no gid left for a new group: {FIRST_GROUP_GID}-{LAST_GROUP_GID}"
    )
    document.next_gid = gid + 1
    return gid


def _within(taken: int, last: int, refusal: str) -> int:
    """`taken`, unless the range ending at `last` is spent: never spill into the next range."""
    if taken > last:
        raise ConfigError(f"{refusal} have all been given once")
    return taken


def _refuse_system_name(name: str) -> None:
    if name in SYSTEM_USERS or name in SYSTEM_GROUPS:
        kind = "account" if name in SYSTEM_USERS else "group"
        raise ConfigError(f"'{name}' is a system {kind}'s name in the session images; choose another")


def _group(document: UsersFile, name: str) -> GroupEntry:
    """The shared group of that name as the file already knows it, or a new one with a gid of its own.

    Names follow the user-name rule (they name folders under /arc/projects), and never a user's own
    group or a system group a user brought along (gid below 30001): sharing that would open sessions
    to people nobody meant to share with."""
    if not GROUP_NAME.fullmatch(name):
        raise ConfigError(f"'{name}' is not a valid group name (a-z, 0-9, '_', '.', '-'; up to 32)")
    _refuse_system_name(name)
    if any(u.name == name for u in document.users):
        raise ConfigError(f"'{name}' is a user's name; a shared group needs a name of its own")
    for user in document.users:
        for group in user.groups:
            if group.name == name:
                if group.gid < FIRST_GROUP_GID:
                    raise ConfigError(f"group '{name}' is a system group (gid {group.gid}); choose another name")
                return group
    return GroupEntry(name=name, gid=_take_gid(document))


def _add(document: UsersFile, name: str, groups: list[str], admin: bool = False) -> Credentials:
    _refuse_system_name(name)
    if any(u.name == name for u in document.users):
        raise ConfigError(f"there is a user named {name} already")
    if any(g.name == name and g.gid != u.gid for u in document.users for g in u.groups):
        raise ConfigError(f"'{name}' is a shared group's name; a user needs a name of its own")
    if name in groups:
        raise ConfigError(f"{name} is the user's own group; name other groups")
    retired = next((r for r in document.retired if r.name == name), None)
    if retired is not None:  # the same name back: their own ids (their kept home is theirs again)
        document.retired.remove(retired)
        uid = retired.uid
    else:
        uid = _take_uid(document)
    shared = [_group(document, group) for group in dict.fromkeys(groups)]
    password, token = new_password(), new_token()
    entry = UserEntry(
        name=name,
        uid=uid,
        gid=uid,
        groups=[GroupEntry(name=name, gid=uid), *shared],
        token=token,
        password=hash_password(password),
        admin=True if admin else None,
    )
    document.users.append(entry)
    return Credentials(name, uid, [g.name for g in shared], password, token, admin)


def add_user(path: Path, name: str, groups: list[str], *, admin: bool = False) -> Credentials:
    """A new user with a generated password (the file keeps only its hash) and an API token; an admin with
    `admin`."""
    try:
        UserEntry(name=name, uid=FIRST_UID, gid=FIRST_UID, token="x" * 16)
    except ValueError:
        raise ConfigError(f"'{name}' is not a valid user name (a-z, 0-9, '_', '.', '-'; up to 32)") from None
    with _editing(path) as document:
        return _add(document, name, groups, admin)


def set_admin(path: Path, name: str, admin: bool) -> bool:
    """Make the user an admin, or an ordinary user again; whether that changed anything. The last admin stays
    one: without an admin nobody could use the admin page, `emulate broadcast` or `emulate usage`."""
    with _editing(path) as document:
        entry = _entry(document, name)
        was = bool(entry.admin)
        if was and not admin:
            _keep_an_admin(document, entry)
        entry.admin = True if admin else None
        return was != admin


def _keep_an_admin(document: UsersFile, leaving: UserEntry) -> None:
    """Refuse to leave the users file without an admin (nobody could then use the admin page, `emulate broadcast`
    or `emulate usage`)."""
    if leaving.admin and not any(u.admin for u in document.users if u is not leaving):
        raise ConfigError(f"{leaving.name} is the last admin; make another one first (`emulate users admin OTHER`)")


def _entry(document: UsersFile, name: str) -> UserEntry:
    entry = next((u for u in document.users if u.name == name), None)
    if entry is None:
        raise ConfigError(f"no user named {name}")
    return entry


@dataclass(frozen=True)
class Removal:
    uid: int
    keep_sessions: bool
    again: bool  # the user had been removed already, their sessions kept: now those end too


def remove_user(path: Path, name: str, *, keep_sessions: bool = False) -> Removal:
    """Remove the user: the service ends their sessions unless `keep_sessions`. Their uid stays theirs (it
    owns their kept /arc/home). Removing a user already removed with their sessions kept ends those."""
    with _editing(path) as document:
        retired = next((r for r in document.retired if r.name == name), None)
        if not any(u.name == name for u in document.users) and retired is not None and retired.keep_sessions:
            if keep_sessions:
                raise ConfigError(f"{name} was removed already; their sessions are kept")
            retired.keep_sessions = False
            return Removal(retired.uid, keep_sessions=False, again=True)
        entry = _entry(document, name)
        if len(document.users) == 1:
            raise ConfigError("the users file must keep at least one user")
        _keep_an_admin(document, entry)
        document.users.remove(entry)
        document.retired[:] = [r for r in document.retired if r.name != name]
        document.retired.append(RetiredUser(name=name, uid=entry.uid, gid=entry.gid, keep_sessions=keep_sessions))
        return Removal(entry.uid, keep_sessions, again=False)


def set_password(path: Path, name: str, password: str | None = None, *, keep_token: bool = False) -> Reset:
    """Give the user a new password (a generated one unless given) and, unless `keep_token`, a new API
    token: a password is reset mostly because credentials leaked, and the token opens as much."""
    password = password or new_password()
    with _editing(path) as document:
        entry = _entry(document, name)
        entry.password = hash_password(password)
        token = None if keep_token else new_token()
        if token is not None:
            entry.token = token
    return Reset(password, token)


def user_token(path: Path, name: str) -> str:
    ensure_users_file(path)
    return read_users_file(path).token_for(name, path)


def rotate_token(path: Path, name: str) -> str:
    """Give the user a new API token; the service re-reads the file, so the old one stops working at once."""
    with _editing(path) as document:
        entry = _entry(document, name)
        entry.token = new_token()
        return entry.token


ADMIN_WORDS = {"admin", "yes", "y", "true", "1"}
NOT_ADMIN_WORDS = {"", "no", "n", "false", "0", "-"}


def _admin_cell(row: list[str], number: int) -> bool:
    cell = row[2].strip().lower() if len(row) > 2 else ""
    if cell not in ADMIN_WORDS | NOT_ADMIN_WORDS:
        raise ConfigError(
            f"row {number}: the admin column says '{row[2].strip()}' (admin, yes, true or 1; empty, no, false "
            "or 0); nothing was imported"
        )
    return cell in ADMIN_WORDS


def import_users(path: Path, table: str) -> list[Credentials]:
    """Users from CSV rows `name[,group[;group...][,admin]]` (a header row `name,groups,admin` may lead); all or
    none. The third column makes the user an admin (admin, yes, true or 1)."""
    rows = [row for row in csv.reader(io.StringIO(table)) if row and any(cell.strip() for cell in row)]
    if rows and rows[0][0].strip().lower() == "name":
        rows = rows[1:]
    if not rows:
        raise ConfigError("no users in the file (rows: name,group;group,admin)")
    made = []
    with _editing(path) as document:
        for number, row in enumerate(rows, start=1):
            name = row[0].strip()
            groups = [g.strip() for g in (row[1] if len(row) > 1 else "").split(";") if g.strip()]
            admin = _admin_cell(row, number)
            if len(row) > 3:
                raise ConfigError(
                    f"row {number}: {len(row)} columns; rows are name,group;group,admin; nothing was imported"
                )
            try:
                UserEntry(name=name, uid=FIRST_UID, gid=FIRST_UID, token="x" * 16)
                made.append(_add(document, name, groups, admin))
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
            + ("  admin     yes (the admin page is at /science-portal/admin)\n" if c.admin else "")
        )
    return "\n".join(blocks)
