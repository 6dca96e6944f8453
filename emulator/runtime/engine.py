"""What kind of container engine answers, found once from its own `/version` and `/info`.

Every difference between Docker, Podman, rootless engines and Docker Desktop that the emulator must
handle is decided from an `EngineFacts` value, here in the runtime adapter, never in core: the other
layers see only plain booleans and words ("limits not enforced", "rootless Podman 4.3.1").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from emulator.errors import ConfigError

DOCKER = "docker"
PODMAN = "podman"


@dataclass(frozen=True)
class LimitSupport:
    """Which of the contract's cgroup limits this engine actually enforces on a session."""

    memory: bool
    cpu: bool
    pids: bool
    why_not: str = ""  # one sentence when any is missing: the reason and what to do

    @property
    def all(self) -> bool:
        return self.memory and self.cpu and self.pids

    @property
    def missing(self) -> list[str]:
        return [name for name, held in (("memory", self.memory), ("CPU", self.cpu), ("pids", self.pids)) if not held]

    @property
    def named(self) -> str:
        """The missing limits as a sentence says them: "memory, CPU and pids"."""
        return listed(self.missing)


def listed(names: list[str]) -> str:
    """["memory", "CPU", "pids"] -> "memory, CPU and pids"."""
    return " and ".join(filter(None, [", ".join(names[:-1]), names[-1] if names else ""]))


@dataclass(frozen=True)
class EngineFacts:
    kind: str  # DOCKER | PODMAN
    version: str  # the engine's own version (Podman's, not the API it emulates)
    api_version: str
    rootless: bool
    cgroup_version: str  # "1" | "2" | "" when the engine does not say
    cgroup_driver: str  # cgroupfs | systemd | none | ""
    operating_system: str  # e.g. "Debian GNU/Linux 12 (bookworm)", "Docker Desktop"
    selinux: bool  # the engine labels containers (SELinux enforcing on its host)
    runtimes: tuple[str, ...] = ()
    cdi_spec_dirs: tuple[str, ...] = ()
    limits: LimitSupport = field(default_factory=lambda: LimitSupport(True, True, True))
    storage_driver: str = ""  # overlay2 | overlay (Podman) | btrfs | zfs | ...
    backing_filesystem: str = ""  # what the driver's folders are on: extfs | xfs | ...
    image_store: str = ""  # Docker's "driver-type" where containerd keeps the images (io.containerd.snapshotter.v1)

    @property
    def layer_limit_possible(self) -> bool:
        """Whether a container's own layer can be given a size (`--storage-opt size`): overlay on XFS (which must
        also be mounted with project quotas, which the engine does not say: the first launch finds out), btrfs,
        ZFS, devicemapper."""
        if self.storage_driver in ("btrfs", "zfs", "devicemapper"):
            return True
        return self.storage_driver in ("overlay2", "overlay") and self.backing_filesystem == "xfs"

    @property
    def snapshot_refusal(self) -> str:
        """Why sessions cannot be saved as images on this engine ("" where they can): a snapshot's image is the
        commit's layers under a configuration of our own (runtime/snapshots.py), which only Docker Engine's own
        image store loads without the layers themselves."""
        if self.podman:
            return (
                f"saving a session as an image needs Docker Engine; this engine is {self.description}, whose "
                "commit would keep the session's own configuration (its token, its HOME) in the image"
            )
        if self.image_store:
            return (
                "saving a session as an image needs Docker Engine's own image store; this engine keeps its images "
                "in containerd's (the containerd-snapshotter feature in daemon.json)"
            )
        return ""

    @property
    def podman(self) -> bool:
        return self.kind == PODMAN

    @property
    def desktop(self) -> bool:
        """Docker Desktop (macOS, Windows, Linux): the engine runs in a VM of its own."""
        return self.operating_system.strip().lower().startswith("docker desktop")

    @property
    def release(self) -> tuple[int, ...]:
        """The engine's version as numbers ("4.3.1" -> (4, 3, 1); "20.10.24+dfsg1" -> (20, 10, 24))."""
        return version_numbers(self.version)

    @property
    def reports_oom(self) -> bool:
        """Whether `State.OOMKilled` is set when the kernel's OOM killer ends a container. Podman 4.3 never sets
        it (an OOM kill is only exit code 137); later Podman may, but a 137 under a limit stays "probably"."""
        return not self.podman

    @property
    def macs_follow_addresses(self) -> bool:
        """Docker derives a container's MAC from its address; Podman's netavark picks one at random, so a reused
        address would keep its last container's MAC in the gateway's neighbour table (runtime/addresses.py)."""
        return not self.podman

    @property
    def memory_counts_cache(self) -> bool:
        """Podman's stats (its Docker API and libpod's own `/libpod/containers/stats`, checked on 4.3) give only
        the cgroup's usage, page cache included, and no breakdown to subtract it with: RAM in use reads high."""
        return self.podman

    @property
    def tmpfs_owner_by_user(self) -> bool:
        """Podman has no tmpfs `uid=`/`gid=` options: its `U` makes the tmpfs the container user's (Docker
        refuses `U`)."""
        return self.podman

    @property
    def keep_id(self) -> bool:
        """Rootless Podman: a session's uid maps to the user who runs the engine (`--userns=keep-id`), so the
        files it writes under /arc are theirs on the host (not a subordinate uid's)."""
        return self.podman and self.rootless

    @property
    def keep_id_as(self) -> bool:
        """`keep-id:uid=U,gid=G` (Podman 4.3+): the engine's user appears in the container as U:G, the
        contract's uid, instead of as its own uid."""
        return self.keep_id and self.release >= (4, 3)

    def arc_owner(self, uid: int, gid: int) -> tuple[int, int]:
        """The ids the service (root in its own container) gives a session user's folders so that sessions see
        them as uid:gid: under keep-id:uid=…, the session's uid is the engine's user, which is the service's root."""
        return (0, 0) if self.keep_id_as else (uid, gid)

    @property
    def cdi_requests(self) -> bool:
        """The Docker API takes CDI devices (`DeviceRequest` driver "cdi"): Docker 25+ with CDI enabled (it then
        reports its CDISpecDirs), Podman 5.4+. Podman before 5.4 ignores them, and its `HostConfig.Devices`
        fails on a CDI name (`stat nvidia.com/gpu=0: no such file`): checked on 4.3."""
        if self.podman:
            return self.release >= (5, 4)
        return bool(self.cdi_spec_dirs) and self.release >= (25,)

    @property
    def arc_owner_advice(self) -> str:
        """Where files sessions write under /arc do not belong to the engine's user on the host: what to do."""
        if self.rootless and not self.podman:
            return (
                "rootless Docker maps a session's uid to a subordinate uid of yours, so files under /arc belong to "
                "that uid on the host: read them through a session or `docker run -v <arc>:/arc`, or enter the "
                "engine's namespace (`nsenter -U --preserve-credentials -t $(cat $XDG_RUNTIME_DIR/docker.pid)`); "
                "rootless Podman (keep-id) or rootful Docker keeps them yours"
            )
        if self.keep_id and not self.keep_id_as:
            return (
                f"Podman {self.version} has keep-id but not keep-id:uid=…: files sessions write under /arc belong "
                "to a subordinate uid on the host unless a user's uid in users.yaml is your own; Podman 4.3+ fixes it"
            )
        return ""

    @property
    def limits_refusal(self) -> str:
        """Why `up` and the service refuse to start under EMULATE_REQUIRE_LIMITS (the limits do not all hold)."""
        return (
            f"EMULATE_REQUIRE_LIMITS=true, but this engine ({self.description}) cannot enforce the sessions' "
            f"{self.limits.named} limits: {self.limits.why_not}"
        )

    @property
    def limits_warning(self) -> str:
        """The paragraph `emulate up` prints where the engine cannot hold the sessions' limits."""
        return (
            f"Limits not enforced: this engine ({self.description}) cannot enforce the sessions' "
            f"{self.limits.named} limits. Sessions launch and show what "
            "they asked for, but each may use the whole machine. Why, and what to do: "
            f"{self.limits.why_not}. Set EMULATE_REQUIRE_LIMITS=true to refuse to start without them."
        )

    def unenforced_limits(self, required: bool) -> str | None:
        """None where every limit holds; else the warning, or (`required`: EMULATE_REQUIRE_LIMITS) a
        ConfigError with the refusal: the one rule `emulate up` and the service both apply."""
        if self.limits.all:
            return None
        if required:
            raise ConfigError(self.limits_refusal)
        return self.limits_warning

    @property
    def gateway_dns_options(self) -> list[str]:
        """resolv.conf options for the gateway, which finds the service by name (sessions it asks the service's
        own name server for). Docker's embedded DNS answers from memory; Podman's aardvark-dns, one per
        network, drops queries while it reloads for a container just started, and a resolver's default 5 s
        time-out (twice: the search domain, then the bare name) made launches take 5 or 10 s when sessions
        were found this way, measured. One second, three tries: a dropped query costs one second."""
        return ["timeout:1", "attempts:3"] if self.podman else []

    @property
    def restart_policy(self) -> str:
        """The platform's own containers' policy: Podman has no daemon to honour `unless-stopped` after a reboot;
        its podman-restart.service starts the containers whose policy is `always`, and only those."""
        return "always" if self.podman else "unless-stopped"

    @property
    def restart_advice(self) -> str:
        """What to do once so the platform comes back after a reboot, where the engine alone will not ("": nothing)."""
        if not self.podman:
            return ""
        return (
            "Podman restarts nothing by itself after a reboot: to bring this platform back, enable its socket and "
            "podman-restart.service once: `systemctl --user enable podman.socket podman-restart.service` and "
            "`loginctl enable-linger $USER` (rootless), or `systemctl enable podman.socket podman-restart.service` "
            "(root)"
        )

    @property
    def description(self) -> str:
        """One line for `emulate status` and `doctor`, e.g. "rootless Podman 4.3.1 (cgroup v1)"."""
        name = "Podman" if self.podman else ("Docker Desktop" if self.desktop else "Docker")
        mode = "rootless " if self.rootless else ""
        cgroup = f" (cgroup v{self.cgroup_version})" if self.cgroup_version else ""
        return f"{mode}{name} {self.version}{cgroup}"


def version_numbers(text: str) -> tuple[int, ...]:
    """The leading numbers of a version ("5.4.0-rc1" -> (5, 4, 0)); () when it has none."""
    numbers = []
    for part in text.strip().lstrip("v").split("."):
        digits = ""
        for char in part:
            if not char.isdigit():
                break
            digits += char
        if not digits:
            break
        numbers.append(int(digits))
        if len(digits) < len(part):  # "24+dfsg1", "0-rc1": the rest is no version number
            break
    return tuple(numbers)


def _security_names(info: dict[str, Any]) -> set[str]:
    """`SecurityOptions` entries look like "name=seccomp,profile=default"; their names."""
    names = set()
    for option in info.get("SecurityOptions") or []:
        for part in str(option).split(","):
            key, _, value = part.partition("=")
            if key == "name":
                names.add(value)
    return names


def _kind_and_version(version: dict[str, Any]) -> tuple[str, str]:
    for component in version.get("Components") or []:
        name = str(component.get("Name", ""))
        if "podman" in name.lower():
            return PODMAN, str(component.get("Version", ""))
    return DOCKER, str(version.get("Version", ""))


def limit_support(info: dict[str, Any], rootless: bool, cgroup_version: str, cgroup_driver: str) -> LimitSupport:
    """Which limits hold, from what the engine reports of its own cgroups."""
    if cgroup_driver == "none" or (rootless and cgroup_version == "1"):
        return LimitSupport(
            False,
            False,
            False,
            "a rootless engine on cgroup v1 cannot set cgroup limits: run the engine as root, "
            "or boot the host with cgroup v2 (systemd.unified_cgroup_hierarchy=1) and delegate the "
            "cpu, memory and pids controllers to the user",
        )

    # Docker and Podman both report what their cgroups allow; absent means they did not say (assume held).
    def held(key: str) -> bool:
        return bool(info.get(key, True))

    memory, cpu, pids = held("MemoryLimit"), held("CpuCfsQuota"), held("PidsLimit")
    why = ""
    if not (memory and cpu and pids):
        why = (
            "the engine's cgroups lack a controller; on cgroup v2 with a rootless engine, delegate cpu, memory "
            "and pids to the user (systemd: Delegate=cpu cpuset io memory pids in user@.service)"
        )
    return LimitSupport(memory, cpu, pids, why)


def engine_facts_from(version: dict[str, Any], info: dict[str, Any]) -> EngineFacts:
    """The facts from the two answers (pure: unit tests feed it recorded answers of each engine)."""
    kind, engine_version = _kind_and_version(version)
    names = _security_names(info)
    rootless = "rootless" in names or bool(info.get("Rootless"))  # Podman 4.3 says it only in its own `Rootless`
    cgroup_version = str(info.get("CgroupVersion") or "")
    cgroup_driver = str(info.get("CgroupDriver") or "")
    return EngineFacts(
        kind=kind,
        version=engine_version,
        api_version=str(version.get("ApiVersion", "")),
        rootless=rootless,
        cgroup_version=cgroup_version,
        cgroup_driver=cgroup_driver,
        operating_system=str(info.get("OperatingSystem") or ""),
        selinux="selinux" in names,
        runtimes=tuple(sorted((info.get("Runtimes") or {}).keys())),
        cdi_spec_dirs=tuple(info.get("CDISpecDirs") or ()),
        limits=limit_support(info, rootless, cgroup_version, cgroup_driver),
        storage_driver=str(info.get("Driver") or ""),
        backing_filesystem=_driver_status(info, "Backing Filesystem"),
        image_store=_driver_status(info, "driver-type"),
    )


def _driver_status(info: dict[str, Any], key: str) -> str:
    """One of the storage driver's [name, value] pairs (Docker's DriverStatus; Podman's compat API says less)."""
    return next((str(pair[1]) for pair in info.get("DriverStatus") or [] if len(pair) == 2 and pair[0] == key), "")


def engine_facts(client: Any) -> EngineFacts:
    """Ask the engine (a docker SDK client) once; callers keep the value."""
    return engine_facts_from(client.version(), client.info())
