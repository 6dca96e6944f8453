"""What kind of container engine answers, found once from its own `/version` and `/info`.

Every difference between Docker, Podman, rootless engines and Docker Desktop that the emulator must
handle is decided from an `EngineFacts` value, here in the runtime adapter, never in core: the other
layers see only plain booleans and words ("limits not enforced", "rootless Podman 4.3.1").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

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

    @property
    def podman(self) -> bool:
        return self.kind == PODMAN

    @property
    def desktop(self) -> bool:
        """Docker Desktop (macOS, Windows, Linux): the engine runs in a VM of its own."""
        return self.operating_system.strip().lower().startswith("docker desktop")

    @property
    def description(self) -> str:
        """One line for `emulate status` and `doctor`, e.g. "rootless Podman 4.3.1 (cgroup v1)"."""
        name = "Podman" if self.podman else ("Docker Desktop" if self.desktop else "Docker")
        mode = "rootless " if self.rootless else ""
        cgroup = f" (cgroup v{self.cgroup_version})" if self.cgroup_version else ""
        return f"{mode}{name} {self.version}{cgroup}"


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
    rootless = "rootless" in names
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
    )


def engine_facts(client: Any) -> EngineFacts:
    """Ask the engine (a docker SDK client) once; callers keep the value."""
    return engine_facts_from(client.version(), client.info())
