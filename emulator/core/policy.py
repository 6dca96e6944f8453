"""Pure admission rules: names, types, resource options, expiry arithmetic, and the launch rules as a whole.

No I/O here, so every rule is unit-tested without Docker.

A launch's rules run in two pure steps, `check_launch` then `plan_launch`, which the platform
(SessionManager.launch) and the test kit (testkit/standalone.py) both call, so a rule changed here holds in
both. Two steps, not one, because the platform checks its disks and the image (I/O, awaited) between them:
a bad name, image or type, and a type launched on its own that attaches to another, are refused before the
engine is asked; a type without a profile, GPUs and resources after. Each caller keeps skaha's order of
refusals that way, and the steps themselves await nothing.

A launch may also ask for a fault (the emulator's own: `check_fault`), only where the platform runs with
EMULATE_FAULTS=true; core/faults.py makes it happen.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from docker_image.digest import InvalidDigest
from docker_image.reference import InvalidReference, Reference

from emulator import labels, naming
from emulator.core.models import DevMount, Fault, FaultKind, HostCapacity, Limits, Resources, Session, Status
from emulator.errors import InvalidRequest
from emulator.profiles import FixedResources, Profile
from emulator.runtime.base import RegistryCredentials
from emulator.session_types import SessionType

if TYPE_CHECKING:  # the rules read the settings they are given; the settings model is not loaded for them
    from emulator.settings import Settings

_NAME = re.compile(r"[A-Za-z0-9\-]+")  # used with fullmatch: "$" would let a trailing newline through
_REFERENCE_CHARACTERS = re.compile(r"[a-zA-Z0-9._:/@\-\[\]]+")  # what the grammar can ever accept
MAX_REFERENCE_LENGTH = 512
MAX_NAME_LENGTH = 63  # a session name becomes the container's hostname
GIVE_UP_FACTOR = 2  # a session not ready after this many times its profile's startup_timeout_seconds fails

# skaha's k8s-resources.json (opencadc/deployments @ d700606), the values a CANFAR user sees.
_CANFAR_CORES = list(range(1, 17))
_CANFAR_MEMORY_GB = [
    1,
    2,
    4,
    6,
    8,
    10,
    12,
    14,
    16,
    20,
    24,
    26,
    28,
    30,
    32,
    36,
    40,
    44,
    48,
    56,
    64,
    80,
    92,
    112,
    128,
    140,
    170,
    192,
]


def resource_context(host_cores: int, host_memory_gb: float, gpu_count: int) -> dict[str, Any]:
    """skaha's /context, with every option this machine cannot give removed.

    Deliberate difference: skaha lists cluster-wide options; a laptop cannot give 16 cores, and
    Docker refuses a CPU limit above the host's, so options stop at what this host has.
    """
    cores = [c for c in _CANFAR_CORES if c <= host_cores] or [1]
    memory = [m for m in _CANFAR_MEMORY_GB if m <= host_memory_gb] or [1]
    return {
        "cores": {
            "default": 1,
            "defaultRequest": 1,
            "defaultLimit": max(cores),
            "defaultHeadless": 1,
            "options": cores,
        },
        "memoryGB": {
            "default": min(2, max(memory)),
            "defaultRequest": min(4, max(memory)),
            "defaultLimit": max(memory),
            "defaultHeadless": min(4, max(memory)),
            "options": memory,
        },
        "gpus": {"options": list(range(1, gpu_count + 1))},
    }


def admission_limits(settings: Settings, capacity: HostCapacity) -> Limits:
    """What admission allows: the settings' caps, and what fixed sessions may hold of this host's capacity."""
    return Limits(
        max_jobs=settings.max_jobs,
        max_apps_per_desktop=settings.max_apps_per_desktop,
        fixed_memory_gb=max(0.0, capacity.memory_gb - settings.host_headroom_gb),
        fixed_cores=float(capacity.cores),
        headroom_gb=settings.host_headroom_gb,
        user_memory_gb=settings.max_user_memory_gb,
        host_checked=settings.orchestrator == "engine",
    )


def validate_name(name: str | None) -> str:
    """The session name, lowercased as skaha stores it."""
    if name is None:
        raise InvalidRequest("Missing parameter 'name'")
    if name == "":
        raise InvalidRequest("name must have a value")
    if not _NAME.fullmatch(name):
        raise InvalidRequest("name can only contain alpha-numeric chars and '-'")
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidRequest(f"name must be at most {MAX_NAME_LENGTH} characters (it becomes the hostname)")
    lowered = name.lower()
    if lowered == naming.PLATFORM_PREFIX or lowered.startswith(f"{naming.PLATFORM_PREFIX}-"):
        # A hostname that spells a platform container's name (another user's session, the service) is
        # what an engine's DNS answers on shared networks: no session may carry one.
        raise InvalidRequest(
            f"name must not start with '{naming.PLATFORM_PREFIX}-': the platform's own containers are named so"
        )
    return lowered


def shown(value: str, limit: int = 120) -> str:
    """A user's value as it may appear in a message: printable, and not too long."""
    text = value if value.isprintable() else ascii(value)[1:-1]
    return text if len(text) <= limit else f"{text[:limit]}…"


def reference_problem(reference: str) -> str | None:
    """What keeps `reference` out of the distribution grammar ([registry[:port]/]name[:tag][@digest]), in
    words; None when it is a valid reference."""
    if len(reference) > MAX_REFERENCE_LENGTH or not _REFERENCE_CHARACTERS.fullmatch(reference):
        return "it has characters an image reference cannot have"
    try:
        Reference.parse_normalized_named(reference)
    except (InvalidReference, InvalidDigest) as exc:  # a digest's own errors are not InvalidReference
        # In our own words (the library echoes the engine's "invalid reference format").
        return str(exc).replace("invalid reference format", "it is not of that form")
    return None


def validate_image(reference: str | None) -> str:
    """An image reference in the distribution grammar ([registry[:port]/]name[:tag][@digest]), checked
    before anything reaches the engine: the engine puts the reference in its request paths."""
    if not reference:
        raise InvalidRequest("Missing parameter 'image'")
    problem = reference_problem(reference)
    if problem is not None:
        raise InvalidRequest(
            f"session image '{shown(reference)}' is not a valid image reference "
            f"([registry[:port]/]name[:tag][@digest]): {problem}"
        )
    return reference


def registry_credentials(header: str | None) -> RegistryCredentials | None:
    """skaha's x-skaha-registry-auth header: base64 of `username:secret` (the secret may hold ':')."""
    if header is None:
        return None
    try:
        decoded = base64.b64decode(header.strip(), validate=True).decode("utf-8")
    except ValueError:  # not base64 (binascii.Error), not ASCII, or not UTF-8 once decoded
        decoded = ""
    username, colon, secret = decoded.partition(":")
    if not colon or not username or not secret:
        raise InvalidRequest("Invalid input.  Must be in form of username:secret")
    return RegistryCredentials(username, secret)


def validate_type(session_type: str | None) -> SessionType:
    """The session type; skaha treats a missing type as headless."""
    if session_type is None:
        return SessionType.HEADLESS
    try:
        return SessionType(session_type)
    except ValueError:
        raise InvalidRequest(f"Invalid session type: {session_type}") from None


def _option(param: str, raw: str | None, options: list[int]) -> int | None:
    if raw is None or raw == "":
        return None
    try:
        value = int(raw)
    except ValueError:
        raise InvalidRequest(f"Invalid value for '{param}': {raw}") from None
    if value not in options:
        raise InvalidRequest(f"Invalid value for '{param}': {raw}")
    return value


@dataclass(frozen=True)
class ResourceRequest:
    cores: str | None = None
    ram: str | None = None
    gpus: str | None = None


def resolve_resources(
    request: ResourceRequest,
    context: dict[str, Any],
    fixed: FixedResources | None,
    gpus_allowed: bool,
    headless: bool,
) -> Resources:
    """Resources for a launch: named values are fixed (request = limit), omitted ones flexible."""
    cores = _option("cores", request.cores, context["cores"]["options"])
    ram = _option("ram", request.ram, context["memoryGB"]["options"])
    gpus = 0
    if request.gpus not in (None, "", "0"):
        gpus = _option("gpus", request.gpus, context["gpus"]["options"] if gpus_allowed else []) or 0
    if fixed is not None:
        # Types with fixed resources (desktop, firefly) ignore cores and ram, as skaha does.
        return Resources(
            fixed.cores_request, fixed.cores_limit, fixed.ram_request_gb, fixed.ram_limit_gb, gpus, fixed=True
        )
    core_default = context["cores"]["defaultHeadless" if headless else "defaultRequest"]
    ram_default = context["memoryGB"]["defaultHeadless" if headless else "defaultRequest"]
    return Resources(
        cores_request=float(cores if cores is not None else core_default),
        cores_limit=float(cores if cores is not None else context["cores"]["defaultLimit"]),
        ram_request_gb=float(ram if ram is not None else ram_default),
        ram_limit_gb=float(ram if ram is not None else context["memoryGB"]["defaultLimit"]),
        gpus=gpus,
        fixed=ram is not None,  # skaha v1: fixed means the memory request equals the limit
    )


def pick_gpus(devices: list[str], in_use: set[str], count: int) -> list[str]:
    """`count` GPUs no session holds, in device order; a session never shares a GPU."""
    if count == 0:
        return []
    free = [d for d in devices if d not in in_use]
    if len(free) < count:
        raise InvalidRequest(f"Invalid value for 'gpus': {count} (only {len(free)} GPU(s) free on this machine)")
    return free[:count]


def parse_env(entries: list[str]) -> list[str]:
    """skaha keeps an env entry only when splitting it on '=' gives exactly two parts."""
    return [e for e in entries if len(e.split("=")) == 2]


# --- faults on request (EMULATE_FAULTS=true) ------------------------------------------------

FAULT_PARAMETER = "fault"
# The env entry that asks for one too: the canfar client sends no parameter of ours, but it sends env entries
# (`canfar create -e EMULATE_FAULT=pending headless ...`). The platform takes it out of the session's env.
FAULT_ENV = "EMULATE_FAULT"
FAULT_FORMS = "pending, pull, oom:SECONDS or end:SECONDS[:EXIT_CODE]"
MAX_FAULT_SECONDS = 1209600  # 14 days: the longest anything lives on CANFAR (a job's deadline)
FAULTS_OFF = (
    "this platform emulates no faults; start it with EMULATE_FAULTS=true (e.g. `EMULATE_FAULTS=true emulate up`) "
    "to ask for one"
)
_TIMED_FAULT = re.compile(r"(oom|end):([0-9]+)(?::([0-9]+))?")


def parse_fault(text: str, where: str = f"'{FAULT_PARAMETER}'") -> Fault:
    """A fault as a launch words it: pending, pull, oom:SECONDS, end:SECONDS or end:SECONDS:EXIT_CODE."""
    if text in (FaultKind.PENDING, FaultKind.PULL):
        return Fault(FaultKind(text))
    found = _TIMED_FAULT.fullmatch(text)
    problem = None
    if found is None or (found[1] == FaultKind.OOM and found[3] is not None):
        problem = f"one of {FAULT_FORMS}"
    elif _over(found[2], MAX_FAULT_SECONDS):
        problem = f"SECONDS is at most {MAX_FAULT_SECONDS}, 14 days"
    elif _over(found[3] or "0", 255):
        problem = "EXIT_CODE is 0 to 255"
    if problem is not None or found is None:
        raise InvalidRequest(f"Invalid value for {where}: {shown(text) or repr('')} ({problem})")
    return Fault(FaultKind(found[1]), int(found[2]), int(found[3] or 0))


def _over(digits: str, most: int) -> bool:
    # Its length first: int() refuses thousands of digits, and no such number is a fault's.
    return len(digits) > len(str(most)) or int(digits) > most


def is_fault_entry(entry: str) -> bool:
    """An env entry that asks for a fault (EMULATE_FAULT=...)."""
    return entry.partition("=")[0] == FAULT_ENV


def check_fault(parameter: str | None, env: Sequence[str], refused: str | None) -> Fault | None:
    """The fault a launch asks for, by the `fault` parameter or an EMULATE_FAULT env entry (None: it asks for
    none). `refused`: why this platform takes none (None: it takes them). Never ignored: a launch that asks
    where faults are off, or asks twice for different ones, is refused."""
    asked = [(f"{FAULT_PARAMETER}={parameter}", parameter, f"'{FAULT_PARAMETER}'")] if parameter else []
    asked += [(entry, entry.partition("=")[2], f"env '{FAULT_ENV}'") for entry in env if is_fault_entry(entry)]
    if not asked:
        return None
    if refused is not None:
        raise InvalidRequest(f"{shown(asked[0][0])} refused: {refused}")
    faults = {parse_fault(value, where) for _, value, where in asked}
    if len(faults) > 1:
        named = " and ".join(shown(words) for words, _, _ in asked)
        raise InvalidRequest(f"two different faults asked for ({named}): ask for one")
    return faults.pop()


def expiry(start: datetime, seconds: int) -> datetime:
    return start + timedelta(seconds=seconds)


def threads(cores: float) -> int:
    return max(1, int(cores))


def check_image_types(image_labels: dict[str, str], reference: str, session_type: str) -> None:
    """skaha's label check: an image that names its session types must name this one."""
    declared = labels.image_session_types(image_labels)
    if declared is not None and session_type not in declared:
        raise InvalidRequest(f"image/type mismatch: {reference}/{session_type}")


class SessionLimitReached(InvalidRequest):
    """skaha's refusal of one session too many (a 400 like any bad launch; its own class, so that a relaunch can
    add what to do about it)."""


def check_session_limit(user: str, active: int, most: int) -> None:
    """skaha's limit of concurrent sessions per user: `active` is how many of the user's sessions count towards
    it now (the store counts its rows in the admitting transaction; the test kit counts the sessions it runs)."""
    if active >= most:
        raise SessionLimitReached(f"User {user} has reached the maximum of {most} active sessions.")


# --- a launch's rules, in two steps (see the module's docstring) ----------------------------------


@dataclass(frozen=True)
class CheckedLaunch:
    """What `check_launch` let through: the name (lowercased), the image and the type, valid; the type's
    profile (None: there is none, which `plan_launch` refuses); the pull's credentials, if the launch sent any;
    the fault it asked for, if any."""

    name: str
    image: str
    type: SessionType
    profile: Profile | None
    credentials: RegistryCredentials | None = field(default=None, repr=False)
    fault: Fault | None = None


def check_launch(
    name: str | None,
    image: str | None,
    session_type: str | None,
    registry_auth: str | None,
    profiles: Mapping[str, Profile],
    *,
    fault: str | None = None,
    env: Sequence[str] = (),
    faults_refused: str | None = FAULTS_OFF,
) -> CheckedLaunch:
    """A launch's first refusals, in skaha's order, before anything asks the engine: the image reference, the
    name, the type, the x-skaha-registry-auth header, and a type that attaches to another launched on its own;
    then the emulator's own, a fault asked for (`check_fault`; `faults_refused`: why none is taken here)."""
    reference = validate_image(image)
    lowered = validate_name(name)
    kind = validate_type(session_type)
    credentials = registry_credentials(registry_auth)
    profile = profiles.get(kind)
    if profile is not None and profile.attaches_to is not None:
        raise InvalidRequest(
            f"a {kind} is attached to a {profile.attaches_to}: POST /session/<{profile.attaches_to} id>/app"
        )
    asked_fault = check_fault(fault, env, faults_refused)
    return CheckedLaunch(lowered, reference, kind, profile, credentials, asked_fault)


@dataclass(frozen=True)
class GpuFacts:
    """The GPUs launches may ask for: this machine's own (`devices`, which the platform hands out), or a
    swarm's, which Swarm places (`placed_by_swarm`); `absent_because` says why there are none."""

    devices: tuple[str, ...] = ()
    placed_by_swarm: bool = False
    absent_because: str = "no NVIDIA GPU on this machine"

    @property
    def available(self) -> bool:
        return bool(self.devices) or self.placed_by_swarm

    def pick(self, in_use: set[str], count: int) -> list[str]:
        """The devices a session of `count` GPUs gets (none to pick across a swarm: Swarm gives them)."""
        return [] if self.placed_by_swarm else pick_gpus(list(self.devices), in_use, count)


@dataclass(frozen=True)
class LaunchPlan:
    """A launch the rules allow: what its session will be, bar its id, its owner and its GPU devices."""

    name: str
    image: str
    type: SessionType
    profile: Profile
    resources: Resources
    env: tuple[str, ...]
    cmd: str | None
    args: str | None
    start_time: datetime
    expiry_time: datetime
    fault: Fault | None = None
    mounts: tuple[DevMount, ...] = ()  # host folders (core/devmounts.py), checked before the plan is made

    def session(self, session_id: str, user: str, gpu_devices: Sequence[str] = ()) -> Session:
        """The Pending session this plan launches."""
        return Session(
            id=session_id,
            user=user,
            type=self.type,
            name=self.name,
            image=self.image,
            status=Status.PENDING,
            resources=self.resources,
            start_time=self.start_time,
            expiry_time=self.expiry_time,
            env=list(self.env),
            cmd=self.cmd,
            args=self.args,
            gpu_devices=list(gpu_devices),
            fault=self.fault,
            mounts=list(self.mounts),
        )


def plan_launch(
    checked: CheckedLaunch,
    asked: ResourceRequest,
    env: Sequence[str],
    cmd: str | None,
    args: str | None,
    *,
    context: dict[str, Any],
    gpus: GpuFacts,
    now: datetime,
    lifetime_seconds: Callable[[bool], int],
    mounts: Sequence[DevMount] = (),
) -> LaunchPlan:
    """A launch's remaining refusals, in skaha's order (a type without a profile, GPUs where there are none,
    resources outside `context`, skaha's /context), then its plan: resources resolved, env entries kept as skaha
    keeps them (less one that asked for a fault), and its expiry (`lifetime_seconds(batch)`: the settings'
    lifetime of a session or a job)."""
    profile = checked.profile
    if profile is None:
        raise InvalidRequest(
            f"session type '{checked.type}' is not available in this emulator yet (no profiles/{checked.type}.yaml)"
        )
    if not gpus.available and asked.gpus not in (None, "", "0"):
        # skaha's words, and why: a laptop without a GPU, or an engine that cannot hand one over.
        raise InvalidRequest(f"Invalid value for 'gpus': {asked.gpus} ({gpus.absent_because})")
    resources = resolve_resources(asked, context, profile.fixed_resources, profile.gpus_allowed, headless=profile.batch)
    return LaunchPlan(
        name=checked.name,
        image=checked.image,
        type=checked.type,
        profile=profile,
        resources=resources,
        env=tuple(parse_env([entry for entry in env if not is_fault_entry(entry)])),
        cmd=cmd,
        args=args,
        start_time=now,
        expiry_time=expiry(now, lifetime_seconds(profile.batch)),
        fault=checked.fault,
        mounts=tuple(mounts),
    )
