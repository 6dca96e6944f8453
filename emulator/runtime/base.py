"""The written contract between the brain and a container runtime."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from emulator.runtime.engine import EngineFacts


@dataclass(frozen=True)
class Mount:
    source: str  # a host path; with `nfs`, the name of the volume that mounts the export
    target: str
    read_only: bool = False
    nfs: str | None = None  # "server:/export": a volume of Docker's local driver, made on each machine that uses it


@dataclass(frozen=True)
class ContainerSpec:
    """Everything needed to run one session container; built by core.contract (pure)."""

    name: str
    image: str
    entrypoint: list[str] | None  # Kubernetes `command`: replaces the image's ENTRYPOINT (and CMD)
    command: list[str] | None  # Kubernetes `args`: replaces the image's CMD
    environment: dict[str, str]
    labels: dict[str, str]
    hostname: str
    user: str  # "uid:gid"
    group_add: list[int]
    memory_bytes: int
    nano_cpus: int
    pids_limit: int
    network: str
    mounts: list[Mount] = field(default_factory=list)
    tmpfs: dict[str, str] = field(default_factory=dict)
    working_dir: str | None = None
    restart_on_failure: bool = False
    gpu_devices: list[str] = field(default_factory=list)
    # What a fixed session holds (its requests; a flexible one holds nothing): an orchestrator places it where
    # these are free.
    memory_reservation_bytes: int = 0
    nano_cpus_reservation: int = 0
    gpus: int = 0  # how many: one engine hands over `gpu_devices`; a swarm places by this count
    # The container log, rotated at this size, this many files kept (what the engine keeps of it on the disk).
    log_max_bytes: int = 10 * 1024 * 1024
    log_files: int = 3
    layer_max_bytes: int | None = None  # the container's own layer, where the engine can cap it (else measured)


@dataclass(frozen=True)
class ContainerState:
    name: str
    labels: dict[str, str]
    state: str  # pending (not placed yet) | created | running | restarting | exited | dead | paused | removing
    exit_code: int | None
    address: str | None  # the container's IP on its network
    oom_killed: bool = False  # the kernel's OOM killer ended it (known from `state`, not from listings)
    reason: str | None = None  # why it waits (pending) or why it ended (e.g. its machine was lost)
    node: str | None = None  # the machine it runs on, where there are several


@dataclass(frozen=True)
class ImageInfo:
    id: str
    tags: list[str]
    labels: dict[str, str]
    digest: str  # repo digest when the image came from a registry, else its id
    size: int = 0  # bytes, unpacked


@dataclass(frozen=True)
class SnapshotRequest:
    """A running container's own layer saved as a new image on top of the image it runs (`image_id`), with that
    image's own configuration (its Env, Cmd, Entrypoint, User, WorkingDir, ExposedPorts), never the
    container's, and `labels` as its whole set of labels. What is mounted into the container (binds, volumes,
    tmpfs) is not in its layer, so never in the image."""

    container: str
    image_id: str
    name: str  # repository:tag
    labels: dict[str, str]
    note: str  # the new layer's line in the image's history


@dataclass(frozen=True)
class RegistryCredentials:
    """What skaha's x-skaha-registry-auth header carries; held in memory for one pull, never stored."""

    username: str
    secret: str

    def __repr__(self) -> str:  # never in a log line or a traceback
        return f"RegistryCredentials(username={self.username!r}, secret=<hidden>)"


@dataclass(frozen=True)
class PullUpdate:
    """One line of an engine's pull progress: a layer's state and, while it moves, its bytes."""

    layer: str
    status: str  # the engine's words: Pulling fs layer, Waiting, Downloading, Extracting, Pull complete, ...
    current: int = 0
    total: int = 0


@dataclass(frozen=True)
class Usage:
    memory_bytes: int
    cpu_cores: float
    gpu_memory_bytes: int | None = None  # of the session's own GPUs (NVML), when it has any
    gpu_utilization: float | None = None  # percent, averaged over them


@dataclass(frozen=True)
class NodeInfo:
    """A machine sessions run on: what it has, and what the sessions placed on it reserve."""

    name: str
    state: str  # ready | down | unknown
    available: bool  # takes new sessions (Swarm's availability: active)
    cores: float
    memory_bytes: int
    reserved_cores: float = 0.0
    reserved_memory_bytes: int = 0
    sessions: int = 0
    manager: bool = False
    gpus: int = 0
    reserved_gpus: int = 0


@dataclass(frozen=True)
class NetworkInfo:
    name: str
    labels: dict[str, str]
    subnets: list[str]


class Runtime(Protocol):
    """A container runtime. Every method is idempotent where it can be:

    - `run` creates and starts a container, or starts the existing one with that name;
    - `remove` of a missing container succeeds.
    """

    async def run(self, spec: ContainerSpec) -> ContainerState:
        """Create (if absent) and start the container; return its state with its network address."""
        ...

    async def remove(self, name: str) -> None:
        """Kill and remove the container and its anonymous volumes; missing is fine."""
        ...

    async def stop(self, name: str) -> None:
        """Stop the container (its processes asked to end, then killed after a grace), keeping it and its logs
        for the session's record; missing is fine."""
        ...

    async def kill(self, name: str) -> None:
        """End the container at once (SIGKILL, and no restart on failure after it), keeping it and its logs for
        the session's record; missing or ended already is fine. (A swarm's service has no stopped state: there,
        as `stop`.)"""
        ...

    async def exhaust_memory(self, name: str) -> bool:
        """Have the kernel's OOM killer end the running container for real: its memory cap brought down to a
        little over what it uses (so what is allocated stays small, whatever its limit was), its main process
        made the killer's first choice, then a process in it that allocates until the kernel steps in (and no
        restart on failure after it). True once the container has ended so; False where that cannot be done
        here (an engine that does not hold memory limits or will not change them, an image without sh and tail,
        a swarm's containers): it may still run."""
        ...

    async def state(self, name: str) -> ContainerState | None:
        """The container's state, or None if it does not exist."""
        ...

    async def outbound_peers(self, name: str) -> set[str] | None:
        """The addresses a running container holds TCP connections open to, as their client (runtime/sockets.py),
        read from inside it (it needs `cat`); None when they cannot be read."""
        ...

    async def containers(self, label_filters: list[str]) -> list[ContainerState]:
        """All containers (running or not) carrying every `key=value` label given."""
        ...

    async def written(self, label_filters: list[str]) -> dict[str, int]:
        """Bytes each container carrying those labels has written to its own layer (by container name); the engine
        measures them, so call it seldom. Containers of other machines of a swarm are not counted."""
        ...

    async def logs(self, name: str, tail_lines: int, max_bytes: int) -> str:
        """The newest stdout and stderr: at most `tail_lines` lines and `max_bytes` bytes."""
        ...

    async def usage(self, name: str) -> Usage | None:
        """Current memory and CPU use, or None if unknown."""
        ...

    async def image(self, reference: str) -> ImageInfo | None:
        """The local image with that reference, or None."""
        ...

    async def images(self) -> list[ImageInfo]:
        """Every local image."""
        ...

    async def pull(
        self,
        reference: str,
        credentials: RegistryCredentials | None,
        on_update: Callable[[PullUpdate], None],
    ) -> ImageInfo:
        """Pull an image, reporting progress as it goes (`on_update` may be called from another thread).

        No credentials: an anonymous pull (never a login the runtime itself may have). Raises
        ImagePullError with a reason people can act on (unknown image, unreachable registry, refused
        credentials, a registry that stopped answering or went silent mid-pull)."""
        ...

    def close(self) -> None:
        """Break off what is in flight (pulls, the change watch) so the service can stop at once."""
        ...

    def watch(self, label_filters: list[str], on_change: Callable[[], None]) -> None:
        """Call `on_change` (from another thread) whenever a container carrying every `key=value` label
        starts, stops, dies or goes away, and once each time the watch (re)connects to the engine."""
        ...

    async def container_image(self, name: str) -> ImageInfo | None:
        """The image a container runs (by id: the name it was started with may name another image since), or None
        when there is no such container."""
        ...

    async def snapshot(self, request: SnapshotRequest) -> ImageInfo:
        """Save the container as a new image (SnapshotRequest says what goes in); an image that had that name before
        loses it, and is removed when nothing else uses it. Nothing is left behind when it fails. Raises
        InvalidRequest where this runtime cannot make one (the reason, in words)."""
        ...

    async def read_image_files(self, image: str, paths: list[str]) -> dict[str, str]:
        """The text of files inside an image, by path (empty when absent), without running the image."""
        ...

    async def nodes(self) -> list[NodeInfo]:
        """The machines sessions may run on (one for a single engine) and what is reserved on each."""
        ...

    async def networks(self) -> list[NetworkInfo]:
        """Every network the engine has (the emulator's and others', whose subnets a new one must avoid)."""
        ...

    async def create_network(self, name: str, labels: dict[str, str], subnet: str) -> None:
        """Create a bridge network with that subnet; one that exists already is fine."""
        ...

    async def connect(self, network: str, container: str) -> None:
        """Attach a running container to a network; attached already is fine."""
        ...

    async def remove_network(self, name: str, detach: list[str]) -> None:
        """Detach those containers and remove the network; missing is fine."""
        ...

    def facts(self) -> EngineFacts:
        """What kind of engine this is (asked once, then kept): which limits it holds, rootless or not."""
        ...
