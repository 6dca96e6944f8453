"""The session contract: (profile, session, user, settings) -> ContainerSpec, pure.

Every session container, whatever its type: runs as the user's uid:gid with the
supplementary groups, all capabilities dropped, no-new-privileges (added by the
adapter), memory limit = RAM with swap disabled, CPU limit = cores, a pids limit,
hostname = session name, /arc bound from the host, /scratch a private tmpfs, and
HOME = PWD = /arc/home/<user>. What differs by type is the profile's data.
"""

from __future__ import annotations

from emulator import labels, naming
from emulator.core.models import GIB, Session, User
from emulator.core.policy import threads
from emulator.gateway.base import INTERNAL_PORT
from emulator.profiles import Profile
from emulator.runtime.base import ContainerSpec, Mount
from emulator.session_types import SessionType
from emulator.settings import Settings

TOP_LEVEL = "/arc"
LOGIN_SHELL = "/sbin/nologin"  # skaha's POSIX mapper gives every user this shell: images must set SHELL
MANAGED_BY = "skaha"  # app.kubernetes.io/managed-by on CANFAR's session pods
XAUTHORITY = "/etc/skaha-x11/Xauthority"  # the desktop's X cookie, for the desktop and its apps only


def app_name(image: str) -> str:
    """skaha's desktop-app container name: the image's last path segment, ':', '.', '_' -> '-', lowercased."""
    last = image.rsplit("/", 1)[-1]
    for char in ":._":
        last = last.replace(char, "-")
    return last.lower()


def container_home(user: User) -> str:
    """The user's home as a session sees it (its host folder is the manager's `host_home`)."""
    return f"{TOP_LEVEL}/home/{user.name}"


def template_values(
    profile: Profile, session: Session, user: User, settings: Settings, app_token: str = ""
) -> dict[str, str]:
    """The values of the profile templates' {placeholders} (profiles.TEMPLATE_FIELDS) for one session."""
    session_url = settings.session_url(session.parent_id or session.id)  # an app is served on its desktop's host
    return {
        "session_id": session.id,
        "session_name": session.name,
        "user": user.name,
        "uid": str(user.uid),
        "gid": str(user.gid),
        "home": container_home(user),
        "top_level": TOP_LEVEL,
        "projects": f"{TOP_LEVEL}/projects",
        "threads": str(threads(session.resources.cores_request)),
        "api_host": f"{naming.gateway_container(settings.prefix)}:{INTERNAL_PORT}",
        "api_version": "v0",
        "base_url": settings.base_url,
        "session_url": session_url,
        "ws_session_url": session_url.replace("http", "ws", 1),
        "ws_base_url": settings.base_url.replace("http", "ws", 1),
        "app_token": app_token,
        "app_name": app_name(session.image),
        "desktop_host": naming.session_container(
            settings.prefix, profile.attaches_to or SessionType.DESKTOP, session.parent_id or session.id
        ),
    }


def _environment(profile: Profile, session: Session, user: User, values: dict[str, str]) -> dict[str, str]:
    environment = {
        "skaha_hostname": values["api_host"],
        "skaha_username": user.name,
        "skaha_sessionid": session.parent_id or session.id,
        "HOME": values["home"],
        "PWD": values["home"],
        "OMP_NUM_THREADS": values["threads"],
    }
    if values["app_token"]:
        # The canfar client reads these: sessions launch sessions (a Ray head its workers, a notebook its
        # jobs) as their owner, through the gateway's internal listener, with the session's own token.
        environment["CANFAR_URL"] = f"http://{values['api_host']}/skaha/v1"
        environment["CANFAR_TOKEN"] = values["app_token"]
    environment.update({key: profile.render(value, values) for key, value in profile.environment.items()})
    if profile.batch:
        # Only batch jobs honour the user's env (skaha v0 and v1 alike).
        environment.update(dict(entry.split("=", 1) for entry in session.env))
    if session.gpu_devices:
        environment["NVIDIA_VISIBLE_DEVICES"] = ",".join(session.gpu_devices)
    if profile.x11:
        environment["XAUTHORITY"] = XAUTHORITY
    return environment


def _command(profile: Profile, session: Session, values: dict[str, str]) -> tuple[list[str] | None, list[str] | None]:
    """Kubernetes' (command, args): what replaces the image's ENTRYPOINT and its CMD."""
    entrypoint = [profile.render(part, values) for part in profile.command] if profile.command else None
    command = None
    if profile.batch:
        # skaha: cmd becomes the container's command (one element), args its args split on single spaces.
        if session.cmd:
            entrypoint = [session.cmd]
        if session.args:
            command = session.args.split(" ")
    return entrypoint, command


def _mounts(profile: Profile, session: Session, settings: Settings) -> list[Mount]:
    files = settings.layout.session_files(session.id)
    mounts = [
        # /arc: the host's folder, or, across machines, the NFS export every machine mounts (the service
        # makes homes in the same export, mounted at arc_path on its own machine).
        Mount(f"{settings.prefix}-arc", TOP_LEVEL, nfs=settings.arc_nfs)
        if settings.arc_nfs
        else Mount(str(settings.layout.arc_path), TOP_LEVEL),
        Mount(str(settings.layout.skaha_system_dir), "/skaha-system", read_only=True),
        Mount(str(files / "passwd"), "/etc/passwd", read_only=True),
        Mount(str(files / "group"), "/etc/group", read_only=True),
    ]
    # The profile's ConfigMaps (the desktop's /desktopstartup templates), installed by the service.
    for target, name in profile.mounts.items():
        mounts.append(Mount(str(settings.layout.config_folder(name)), target, read_only=True))
    if profile.x11:  # the display's owner (the desktop) holds the cookie; its apps read the same file
        cookie = settings.layout.session_files(session.parent_id or session.id) / "Xauthority"
        mounts.append(Mount(str(cookie), XAUTHORITY, read_only=True))
    # Host folders a developer asked for (`emulate dev --mount`, core/devmounts.py), read-write as /arc is.
    mounts.extend(Mount(m.source, m.target) for m in session.mounts)
    return mounts


def scratch_bytes(profile: Profile, session: Session) -> int:
    """/scratch: skaha's ephemeral-storage limit for the type, but at most half the memory limit.

    It is a tmpfs whose pages count against the session's memory: capped so, filling it fails
    with ENOSPC ("No space left on device") while the session still has memory to run in,
    instead of the kernel's OOM killer ending the session.
    """
    memory = int(session.resources.ram_limit_gb * GIB)
    return min(int(profile.scratch_gb * GIB), memory // 2)


def _labels(session: Session, user: User, settings: Settings) -> dict[str, str]:
    resources = session.resources
    return {
        **labels.platform_labels(settings.instance, labels.ROLE_SESSION),
        labels.MANAGED_BY: MANAGED_BY,  # what CANFAR's tools select on; the instance label says it is ours
        labels.ROW_ID: session.id,
        labels.SESSION_ID: session.parent_id or session.id,
        **({labels.APP_ID: session.app_id} if session.app_id else {}),
        labels.USERNAME: user.name,
        labels.SESSION_NAME: session.name,
        labels.KIND: session.type,
        labels.FLAVOR: "fixed" if resources.fixed else "flexible",
        labels.ACCELERATOR: "gpu" if resources.gpus else "none",
    }


def build_spec(
    profile: Profile, session: Session, user: User, settings: Settings, app_token: str = ""
) -> ContainerSpec:
    values = template_values(profile, session, user, settings, app_token)
    entrypoint, command = _command(profile, session, values)
    resources = session.resources
    return ContainerSpec(
        name=naming.session_container(settings.prefix, session.type, session.id),
        image=session.image,
        entrypoint=entrypoint,
        command=command,
        environment=_environment(profile, session, user, values),
        labels=_labels(session, user, settings),
        hostname=profile.render(profile.hostname, values),
        user=f"{user.uid}:{user.gid}",
        group_add=[gid for gid in user.supplementary_gids if gid != user.gid],
        memory_bytes=int(resources.ram_limit_gb * GIB),
        nano_cpus=int(resources.cores_limit * 1e9),
        # Fixed sessions hold what they asked for; flexible ones share what is free (as admission counts them).
        memory_reservation_bytes=int(resources.ram_request_gb * GIB) if resources.fixed else 0,
        nano_cpus_reservation=int(resources.cores_request * 1e9) if resources.fixed else 0,
        pids_limit=settings.pids_limit,
        network=naming.user_network(settings.prefix, user.name),  # shared with the gateway, no other user
        mounts=_mounts(profile, session, settings),
        tmpfs={"/scratch": f"size={scratch_bytes(profile, session)},exec,mode=0700,uid={user.uid},gid={user.gid}"},
        working_dir=profile.render(profile.working_dir, values) if profile.working_dir else None,
        restart_on_failure=profile.interactive,
        gpu_devices=session.gpu_devices,
        gpus=resources.gpus,
        log_max_bytes=profile.log_max_mb * 1024 * 1024,
        log_files=profile.log_files,
        layer_max_bytes=int(settings.session_layer_gb * GIB) if settings.session_layer_gb else None,
    )


def passwd_lines(image_passwd: str, user: User, home: str) -> str:
    """The image's /etc/passwd plus the platform user (skaha's init-users-groups step), whose login
    shell is skaha's: /sbin/nologin. Terminals must therefore take the image's SHELL."""
    kept = [line for line in image_passwd.splitlines() if line and not line.startswith(f"{user.name}:")]
    kept = [line for line in kept if line.split(":")[2:3] != [str(user.uid)]]
    kept.append(f"{user.name}:x:{user.uid}:{user.gid}::{home}:{LOGIN_SHELL}")
    return "\n".join(kept) + "\n"


def group_lines(image_group: str, user: User) -> str:
    """The image's /etc/group plus the user's groups, each listing the user as a member."""
    ours = {g.gid: g.name for g in user.groups}
    ours.setdefault(user.gid, user.name)
    ours_names = set(ours.values())
    kept = []
    for line in image_group.splitlines():
        parts = line.split(":")
        if not line or len(parts) < 3:
            continue
        if parts[0] in ours_names or (parts[2].isdigit() and int(parts[2]) in ours):
            continue
        kept.append(line)
    kept.extend(f"{name}:x:{gid}:{user.name}" for gid, name in sorted(ours.items()))
    return "\n".join(kept) + "\n"


def xauthority(display: int, cookie: bytes) -> bytes:
    """An Xauthority file holding one MIT-MAGIC-COOKIE-1 for `display` on any host (FamilyWild):
    the X server reads it with -auth, clients through XAUTHORITY."""

    def counted(data: bytes) -> bytes:
        return len(data).to_bytes(2, "big") + data

    family_wild = b"\xff\xff"
    return (
        family_wild + counted(b"") + counted(str(display).encode()) + counted(b"MIT-MAGIC-COOKIE-1") + counted(cookie)
    )
