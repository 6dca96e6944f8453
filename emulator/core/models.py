"""Domain types. skaha's JSON field names appear only at the API edge (api/views.py)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from emulator.session_types import SessionType

GIB = 1024**3


class Status(enum.StrEnum):
    PENDING = "Pending"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    TERMINATING = "Terminating"

    @property
    def final(self) -> bool:
        return self in (Status.SUCCEEDED, Status.FAILED)

    @property
    def live(self) -> bool:
        return self in (Status.PENDING, Status.RUNNING)


class FaultKind(enum.StrEnum):
    """What a launch may ask to go wrong (EMULATE_FAULTS=true), as CANFAR users meet it."""

    PENDING = "pending"  # never scheduled: Pending, with FailedScheduling events, until deleted or expired
    PULL = "pull"  # its image pull fails (ErrImagePull)
    OOM = "oom"  # the kernel's OOM killer ends it, `seconds` after it runs
    END = "end"  # its container ends by itself, `seconds` after it runs, with `exit_code`


@dataclass(frozen=True)
class Fault:
    kind: FaultKind
    seconds: int = 0
    exit_code: int = 0

    @property
    def timed(self) -> bool:
        """It strikes a while after the session runs (the others keep it from ever running)."""
        return self.kind in (FaultKind.OOM, FaultKind.END)

    def __str__(self) -> str:
        """As a launch asks for it (and the store keeps it): pending, pull, oom:30, end:30, end:30:1."""
        if not self.timed:
            return self.kind.value
        code = f":{self.exit_code}" if self.kind is FaultKind.END and self.exit_code else ""
        return f"{self.kind.value}:{self.seconds}{code}"


@dataclass(frozen=True)
class Group:
    name: str
    gid: int


@dataclass(frozen=True)
class User:
    name: str
    uid: int
    gid: int
    groups: tuple[Group, ...] = ()
    admin: bool = False  # sees and acts on every user's sessions (the admin page and API)

    @property
    def supplementary_gids(self) -> list[int]:
        return sorted({g.gid for g in self.groups})

    @property
    def shared_groups(self) -> set[str]:
        """The groups the user shares with others (not their own, whose id is their gid)."""
        return {g.name for g in self.groups if g.gid != self.gid}

    def may_open(self, owner: User) -> bool:
        """A session's URL opens for its owner and for anyone sharing one of the owner's groups."""
        return self.name == owner.name or bool(self.shared_groups & owner.shared_groups)


@dataclass(frozen=True)
class Resources:
    """What a session asked for. `fixed` means request == limit (the user named a value)."""

    cores_request: float
    cores_limit: float
    ram_request_gb: float
    ram_limit_gb: float
    gpus: int = 0
    fixed: bool = False


@dataclass(frozen=True)
class DevMount:
    """A host folder bind-mounted read-write into a session (`emulate dev --mount`; the emulator's own)."""

    source: str  # a host path, absolute
    target: str  # where the session sees it

    def __str__(self) -> str:
        return f"{self.source}:{self.target}"


@dataclass
class Session:
    id: str
    user: str
    type: SessionType
    name: str
    image: str
    status: Status
    resources: Resources
    start_time: datetime
    expiry_time: datetime
    env: list[str] = field(default_factory=list)
    cmd: str | None = None
    args: str | None = None
    gpu_devices: list[str] = field(default_factory=list)
    ended_at: datetime | None = None
    parent_id: str | None = None  # desktop-apps: the desktop session they draw on
    app_id: str | None = None  # desktop-apps: skaha's 3-character app id
    exit_code: int | None = None
    fault: Fault | None = None  # what its launch asked to go wrong (EMULATE_FAULTS=true)
    mounts: list[DevMount] = field(default_factory=list)
    last_activity: datetime | None = None  # a request last went through the gateway to it then (None: none yet)
    queued_at: datetime | None = None  # a batch job waiting for resources since then (None: admitted)


@dataclass(frozen=True)
class Event:
    session_id: str
    type: str  # Normal | Warning
    reason: str
    message: str
    first_time: datetime
    last_time: datetime
    count: int = 1


@dataclass(frozen=True)
class HostCapacity:
    """What this machine (or a swarm's machines, together) has to give sessions (measured at service start)."""

    cores: int
    memory_gb: float
    gpus: int = 0  # a swarm's GPUs, which Swarm hands out (one machine's are the manager's to pick)


@dataclass(frozen=True)
class HostFacts:
    """What sessions may be given here, measured once at service start: skaha's /context (the cores, RAM and
    GPU options a launch may ask for), the capacity, this machine's GPUs that sessions can be given, and why
    there are none, when there are none."""

    context: dict[str, Any]
    capacity: HostCapacity
    gpu_devices: list[str] = field(default_factory=list)
    gpu_note: str = "no NVIDIA GPU on this machine"


@dataclass(frozen=True)
class CatalogueEntry:
    """A local image offered for session types (skaha's GET /image entry)."""

    id: str
    types: list[str]
    digest: str
    description: str = ""  # the image's OCI description label


@dataclass(frozen=True)
class PlatformStats:
    """skaha's view=stats: what runs and what it asked for, against the host's capacity."""

    interactive: int
    desktop_apps: int
    headless: int
    requested_cores: float
    requested_ram_gb: float
    capacity: HostCapacity
    requested_gpus: int = 0
    gpus: int = 0  # this machine's GPUs that sessions can be given


@dataclass(frozen=True)
class Limits:
    """What admission allows: per user, per desktop, and what fixed sessions may hold on this host."""

    max_jobs: int
    max_apps_per_desktop: int
    fixed_memory_gb: float  # the host's memory less the headroom kept back
    fixed_cores: float
    headroom_gb: float
    user_memory_gb: float | None = None  # what one user's fixed sessions may hold in all (None: no cap)
    host_checked: bool = True  # False: an orchestrator places sessions on its machines (Swarm), and waits


@dataclass(frozen=True)
class LaunchRequest:
    name: str | None
    image: str | None
    type: str | None
    cores: str | None = None
    ram: str | None = None
    gpus: str | None = None
    cmd: str | None = None
    args: str | None = None
    env: list[str] = field(default_factory=list)
    fault: str | None = None  # the emulator's own parameter (EMULATE_FAULTS=true); an env entry may ask too
    mounts: list[str] = field(default_factory=list)  # SOURCE:TARGET host folders (the emulator's own)
    by_session: bool = False  # asked with a session's own token (from inside a session), not a user's
    # skaha's x-skaha-registry-auth header, for this launch's pull only (never in a repr, so never in a log)
    registry_auth: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class AppRequest:
    image: str | None
    cores: str | None = None
    ram: str | None = None
    registry_auth: str | None = field(default=None, repr=False)
