"""What a session needs on the host before its container starts: the user's home on /arc and
the passwd/group files that make the user's uid resolve to a name inside the image."""

from __future__ import annotations

import os
import re
import secrets
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path

from emulator.core.contract import container_home, group_lines, passwd_lines, xauthority
from emulator.core.models import Session, User
from emulator.errors import EmulatorError
from emulator.profiles import Profile
from emulator.runtime.base import Runtime
from emulator.settings import Settings


def ensure_home(arc: Path, user: User, owner: tuple[int, int] | None = None) -> None:
    """/arc/home/<user>, mode 0700 and owned by the user, made on first launch only (never touched again).
    `owner`: the ids that are the user's as sessions see them, where the engine maps ids (EngineFacts.arc_owner)."""
    homes = arc / "home"
    homes.mkdir(parents=True, exist_ok=True)
    (arc / "projects").mkdir(parents=True, exist_ok=True)
    home = homes / user.name
    if home.exists():
        return
    # Built under a temporary name and renamed, so a failure never leaves a home the user cannot enter.
    draft = Path(tempfile.mkdtemp(prefix=f".{user.name}.", dir=homes))
    try:
        (draft / ".ssl").mkdir(mode=0o700)
        for path in (draft, draft / ".ssl"):
            shutil.chown(path, *(owner or (user.uid, user.gid)))
        draft.chmod(0o700)
        draft.rename(home)
    except OSError as exc:
        shutil.rmtree(draft, ignore_errors=True)
        if not home.exists():
            raise EmulatorError(f"cannot create {home} for uid {user.uid}: {exc}") from exc


def install_folder(source: Path, target: Path, executable: bool) -> None:
    """Make `target` hold exactly the files of `source` (what sessions mount, as skaha mounts ConfigMaps).

    Running sessions have this very folder mounted (and a shell may be reading a script): each
    file is replaced whole, never rewritten in place, and the folder itself stays.
    """
    target.mkdir(parents=True, exist_ok=True)
    target.chmod(0o755)
    wanted = {path.name for path in source.iterdir() if path.is_file()}
    for name in wanted:
        draft = target / f".{name}.new"
        shutil.copyfile(source / name, draft)
        draft.chmod(0o755 if executable else 0o644)
        os.replace(draft, target / name)
    for stale in target.iterdir():
        if stale.name not in wanted:
            stale.unlink()


def install_session_files(settings: Settings, profiles: Iterable[Profile]) -> None:
    """The launch scripts (/skaha-system) and every folder a profile mounts, from the profiles folder."""
    install_folder(settings.profiles_dir / "skaha-system", settings.layout.skaha_system_dir, executable=True)
    for folder in {name for profile in profiles for name in profile.mounts.values()}:
        install_folder(settings.profiles_dir / folder, settings.layout.config_folder(folder), executable=False)


PROJECT_NAME = re.compile(r"[a-z_][a-z0-9_.-]{0,31}")


def ensure_projects(arc: Path, user: User) -> None:
    """/arc/projects/<group> for each group the user shares: setgid, writable by the group, closed to others."""
    for group in user.groups:
        if group.gid == user.gid or not PROJECT_NAME.fullmatch(group.name):
            continue  # the user's own group has no project; a name unfit for a folder gets none
        folder = arc / "projects" / group.name
        if folder.exists():
            continue
        try:
            folder.mkdir(parents=True)
            shutil.chown(folder, group=group.gid)
            folder.chmod(0o2770)
        except OSError as exc:
            raise EmulatorError(f"cannot create {folder} for group {group.name}: {exc}") from exc


class IdentityFiles:
    """The image's /etc/passwd and /etc/group plus the user, as skaha's init containers write them.

    An image's own files are read once per image id (one helper container, ~100 ms) and cached.
    """

    def __init__(self, runtime: Runtime, settings: Settings) -> None:
        self._runtime = runtime
        self._settings = settings
        self._cache: dict[str, tuple[str, str]] = {}

    async def write(self, session: Session, user: User) -> None:
        image = await self._runtime.image(session.image)
        key = image.id if image else session.image
        if key not in self._cache:
            found = await self._runtime.read_image_files(session.image, ["/etc/passwd", "/etc/group"])
            self._cache[key] = (found["/etc/passwd"], found["/etc/group"])
        passwd, group = self._cache[key]
        files = self._settings.layout.session_files(session.id)
        files.mkdir(parents=True, exist_ok=True)
        (files / "passwd").write_text(passwd_lines(passwd, user, container_home(user)))
        (files / "group").write_text(group_lines(group, user))
        for path in (files / "passwd", files / "group"):
            path.chmod(0o644)

    def write_x11_cookie(self, session: Session) -> None:
        """A new desktop's display cookie (mounted only into that desktop and its apps; never rewritten,
        so a resumed launch keeps the cookie its apps hold)."""
        path = self._settings.layout.session_files(session.id) / "Xauthority"
        if path.exists():
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        draft = path.with_suffix(".new")
        draft.write_bytes(xauthority(1, secrets.token_bytes(16)))
        draft.chmod(0o644)  # read by the session's uid; the state folder itself is the host's
        os.replace(draft, path)
