"""Which host folders a launch may bind-mount into its session (`emulate dev --mount SOURCE:TARGET`).

A bind mount of a host folder is the engine reaching into the machine on a caller's word, so it is the
emulator's own addition and a narrow one: honoured only where one person owns the platform (loopback, no
sign-in, one engine) unless EMULATE_DEV_MOUNTS says otherwise; never for a session's own token (code running
in a session must not reach the host's files); absolute, plain paths only; never over the contract's own
paths (/arc, /scratch, /skaha-system, the identity files...) nor the kernel's, and never a system folder of
the host nor the platform's own state and config (every session's token, the users file: where the operator
allows mounts for every user, one must not read another's way in). A source is checked as given and with the
links the service can see followed (a link in a home under /arc, which the engine would follow). Whether the
source exists is the engine's to say (a bind of a missing folder is refused there: the service runs in a
container and does not see the host's files); the CLI checks it first.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from emulator.core.contract import TOP_LEVEL, XAUTHORITY
from emulator.core.models import DevMount
from emulator.core.policy import shown
from emulator.errors import InvalidRequest

if TYPE_CHECKING:
    from emulator.settings import Settings

MOST = 8
# What the contract mounts or makes in every session (a desktop's /desktopstartup comes from its profile).
CONTRACT_TARGETS = (TOP_LEVEL, "/scratch", "/skaha-system", "/etc/passwd", "/etc/group", XAUTHORITY)
KERNEL_TARGETS = ("/proc", "/sys", "/dev")
# Host folders no session gets: the kernel's, and where the engine's socket and other daemons' live.
SYSTEM_SOURCES = ("/proc", "/sys", "/dev", "/run", "/var/run", "/boot")
FORM = "SOURCE:TARGET, two absolute paths"


def platform_folders(settings: Settings) -> tuple[str, ...]:
    """The host folders that hold the platform's own secrets (its state: sessions' tokens; its config: users)."""
    return tuple(str(path) for path in (settings.layout.state_path, settings.layout.config_path))


def refusal(settings: Settings) -> str:
    """Why launches here may not mount host folders ("" when they may)."""
    if settings.orchestrator != "engine":
        return "sessions run on a swarm's machines, which do not have this machine's folders"
    if settings.dev_mounts is False:
        return "EMULATE_DEV_MOUNTS is false on this platform"
    if settings.dev_mounts is None and settings.auth_required:
        return (
            "this platform is shared (sign-in on, or reachable beyond loopback): host folders are mounted only "
            "on a one-person laptop, or where the operator sets EMULATE_DEV_MOUNTS=true"
        )
    return ""


def _under(path: str, folders: Iterable[str]) -> bool:
    return any(path == folder or path.startswith(f"{folder}/") for folder in folders)


def _plain(path: str, role: str, entry: str) -> str:
    if not path.startswith("/") or posixpath.normpath(path) != path or not path.isprintable():
        raise InvalidRequest(
            f"mount '{shown(entry)}': the {role} must be an absolute path with no '..', '.', '//' or trailing '/'"
        )
    if path == "/":
        raise InvalidRequest(f"mount '{shown(entry)}': the {role} cannot be /")
    return path


def _target(target: str, entry: str, contract: Sequence[str]) -> str:
    _plain(target, "target", entry)
    over = [path for path in contract if _under(path, [target]) or _under(target, [path])]
    if target.startswith("/skaha") or over:
        raise InvalidRequest(
            f"mount '{shown(entry)}': {target} is the platform's ({', '.join(over) or '/skaha*'}); "
            "mount it elsewhere, e.g. /opt/work"
        )
    if _under(target, KERNEL_TARGETS):
        raise InvalidRequest(f"mount '{shown(entry)}': {target} is the kernel's; mount it elsewhere, e.g. /opt/work")
    return target


def _source(source: str, entry: str, platform: Sequence[str]) -> str:
    _plain(source, "source", entry)
    # As given, and as the links the service sees lead (the engine follows a link in a bind's source).
    for path in dict.fromkeys((source, posixpath.realpath(source))):
        if _under(path, SYSTEM_SOURCES):
            raise InvalidRequest(f"mount '{shown(entry)}': {path} is a system folder of the host")
        if _under(path, platform):
            raise InvalidRequest(f"mount '{shown(entry)}': {path} holds the platform's own state or configuration")
    return source


def dev_mounts(
    entries: Sequence[str],
    refused: str,
    by_session: bool,
    profile_targets: Iterable[str] = (),
    platform: Sequence[str] = (),
) -> list[DevMount]:
    """The launch's `mount` entries (SOURCE:TARGET), checked; `refused`: why this platform takes none;
    `platform`: the platform's own folders (`platform_folders`), which no session mounts."""
    if not entries:
        return []
    if refused:
        raise InvalidRequest(f"mount: {refused}")
    if by_session:
        raise InvalidRequest("mount: a session's own token cannot mount host folders; ask with your API token")
    if len(entries) > MOST:
        raise InvalidRequest(f"mount: at most {MOST} host folders per session")
    contract = (*CONTRACT_TARGETS, *profile_targets)
    platform = tuple(dict.fromkeys([*platform, *map(posixpath.realpath, platform)]))
    mounts: list[DevMount] = []
    for entry in entries:
        if entry.count(":") != 1:
            raise InvalidRequest(f"mount '{shown(entry)}' is not {FORM}")
        source, target = entry.split(":")
        _source(source, entry, platform)
        if any(m.target == target for m in mounts):
            raise InvalidRequest(f"mount '{shown(entry)}': {target} is mounted twice")
        mounts.append(DevMount(source, _target(target, entry, contract)))
    return mounts
