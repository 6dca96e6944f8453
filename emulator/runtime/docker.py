"""DockerRuntime: the Runtime protocol over the Docker SDK, and the one boundary where SDK errors
become the emulator's own (`docker_errors`), for the service and for the CLI's bootstrap code alike.

The SDK blocks, so every call runs in a worker thread (this is the one place the
service hops threads). 404 and 409 on removal count as done.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import logging
import re
import socket
import tarfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import replace
from datetime import UTC, datetime
from functools import partial
from typing import Any, TypeVar

import docker
import docker.errors
import requests
import urllib3
from docker.auth import encode_header
from docker.models.containers import _create_container_args
from docker.types import DeviceRequest, DriverConfig, IPAMConfig, IPAMPool, LogConfig
from docker.types import Mount as DockerMount
from docker.utils import parse_repository_tag

from emulator.errors import EngineError, EngineRefused, ImagePullError, InvalidRequest, SubnetTaken, Unavailable
from emulator.runtime.addresses import free_address, mac_for
from emulator.runtime.base import (
    ContainerSpec,
    ContainerState,
    ImageInfo,
    Mount,
    NetworkInfo,
    NodeInfo,
    PullUpdate,
    RegistryCredentials,
    SnapshotRequest,
    Usage,
)
from emulator.runtime.endpoint import client_from_environment
from emulator.runtime.engine import EngineFacts, engine_facts
from emulator.runtime.gpus import CDI_GPU_KIND, DEFAULT_CDI_DIRS, Gpu, cdi_device_names, cdi_names
from emulator.runtime.local_names import local_name
from emulator.runtime.pull_failures import pull_failure
from emulator.runtime.snapshots import save_snapshot
from emulator.runtime.sockets import outbound_peers

T = TypeVar("T")
log = logging.getLogger(__name__)
_EXIT_CODE = re.compile(r"^Exited \((-?\d+)\)")


NO_ENGINE_ADVICE = (
    "is the engine running? (`emulate doctor` checks; README: 'Your machine'; DOCKER_HOST selects another engine)"
)


_OS_ERROR = re.compile(r"\[Errno \d+\] ([^'\")\]]+)|Error\(\d+, '([^']+)'\)")


def _connection_words(exc: Exception) -> str:
    """The operating system's words inside the SDK's nested connection error ("Connection refused", "No such
    file or directory"), not its pool and URL wrapping; the whole text where it holds none."""
    found = [bracketed or called for bracketed, called in _OS_ERROR.findall(str(exc))]
    return found[-1].strip() if found else str(exc)


@contextmanager
def docker_errors() -> Iterator[None]:
    """Docker SDK errors as EmulatorErrors, with advice (as compose's handle_connection_errors).

    No engine: Unavailable with how to get one. An engine failure (5xx): Unavailable. Any other
    refusal: EmulatorError with the engine's explanation. Code that expects a particular
    refusal (404 on removal, say) catches it inside, before it reaches this boundary.
    """
    try:
        yield
    except docker.errors.APIError as exc:
        explanation = exc.explanation or str(exc)
        if exc.status_code and exc.status_code >= 500 and "No such" not in explanation:
            raise Unavailable(f"Docker engine error: {explanation}") from exc
        raise EngineError(f"Docker: {explanation}") from exc
    except requests.exceptions.HTTPError as exc:  # the engine answered, with an error
        raise EngineError(f"Docker: {exc}") from exc
    except requests.exceptions.ReadTimeout as exc:
        raise Unavailable(f"the Docker engine did not answer in time: {exc}") from exc
    except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
        raise Unavailable(f"cannot reach the Docker engine ({_connection_words(exc)}); {NO_ENGINE_ADVICE}") from exc


def has_network(client: docker.DockerClient, name: str) -> bool:
    """Whether a network of exactly that name exists (the engine's name filter also matches parts of
    names: "emulate-x" finds "emulate-x-user-y")."""
    return any(network["Name"] == name for network in client.api.networks(names=[name]))


def connect() -> docker.DockerClient:
    """A Docker client, or an Unavailable error that says how to get an engine."""
    with docker_errors():
        client = client_from_environment(timeout=120)  # DOCKER_HOST, the context, or a rootless socket
        client.ping()
    return client


_GO_SYMLINK = 1 << 27  # Go's os.ModeSymlink, as Docker reports file modes


class ImageFiles:
    """Files inside an image, read through one created (never started) helper container.

    `stat` reads only the archive endpoint's stat header (a HEAD request: no content moves);
    `read` copies one file out. The helper carries `helper_labels`, so a crash never strands one.
    """

    def __init__(self, client: docker.DockerClient, image: str, helper_labels: dict[str, str]) -> None:
        self._api = client.api
        created = self._api.create_container(image, command=["/bin/true"], entrypoint=[], labels=helper_labels)
        self._container: str = created["Id"]

    def __enter__(self) -> ImageFiles:
        return self

    def __exit__(self, *_: object) -> None:
        self._api.remove_container(self._container, force=True)

    def stat(self, path: str) -> dict[str, Any] | None:
        """Docker's stat of `path` (name, size, mode with Go's type bits, linkTarget), or None when absent."""
        url = self._api._url("/containers/{0}/archive", self._container)
        response = self._api.head(url, params={"path": path}, timeout=30)  # APIClient is a requests.Session
        if response.status_code == 404:
            return None
        self._api._raise_for_status(response)  # an engine error as an APIError, as everywhere else
        stat: dict[str, Any] = json.loads(base64.b64decode(response.headers["X-Docker-Container-Path-Stat"]))
        return stat

    @staticmethod
    def is_symlink(stat: dict[str, Any]) -> bool:
        return bool(stat["mode"] & _GO_SYMLINK)

    def read(self, path: str) -> str:
        """The text of one file (empty when absent)."""
        try:
            chunks, _ = self._api.get_archive(self._container, path)
        except docker.errors.NotFound:
            return ""
        with tarfile.open(fileobj=io.BytesIO(b"".join(chunks))) as archive:
            member = archive.next()
            handle = archive.extractfile(member) if member else None
            return handle.read().decode("utf-8", errors="replace") if handle else ""


def _state(container: Any, network: str | None = None) -> ContainerState:
    attrs = container.attrs
    state = attrs.get("State", {})
    networks = attrs.get("NetworkSettings", {}).get("Networks", {}) or {}
    address = None
    if network and network in networks:
        address = networks[network].get("IPAddress") or None
    elif networks:
        address = next(iter(networks.values())).get("IPAddress") or None
    status = state.get("Status", "unknown")
    return ContainerState(
        name=container.name,
        labels=attrs.get("Config", {}).get("Labels") or {},
        state=status,
        exit_code=state.get("ExitCode") if status in ("exited", "dead") else None,
        address=address,
        oom_killed=bool(state.get("OOMKilled")),
    )


def short_names(tags: list[str]) -> list[str]:
    """Podman files a local image without a registry under `localhost/` (`localhost/skaha-emulator/notebook`);
    the name it was built or tagged as is the one people know, and Podman resolves it back at launch. (On
    Docker `localhost/` names a registry: kept.)"""
    return [tag.removeprefix("localhost/") for tag in tags]


def _image_info(image: Any, podman: bool = False) -> ImageInfo:
    attrs = image.attrs
    digests = attrs.get("RepoDigests") or []
    return ImageInfo(
        id=image.id,
        tags=short_names(image.tags) if podman else list(image.tags),
        labels=(attrs.get("Config") or {}).get("Labels") or {},
        digest=digests[0].split("@", 1)[1] if digests else image.id,
        size=int(attrs.get("Size") or 0),
    )


def _pull_update(chunk: dict[str, Any]) -> PullUpdate | None:
    layer, status = chunk.get("id"), chunk.get("status") or ""
    if not layer or status.startswith(("Pulling from", "Digest:", "Status:")):
        return None
    detail = chunk.get("progressDetail") or {}
    return PullUpdate(layer, status, int(detail.get("current") or 0), int(detail.get("total") or 0))


class _PullStream:
    """A pull's progress as the engine streams it: each layer's news handed on, the engine's own words on an
    error, and a pull the engine only retries given up once nothing came for `stall` seconds."""

    def __init__(self, stall: float, on_update: Callable[[PullUpdate], None]) -> None:
        self.stall = stall
        self.on_update = on_update
        self.moved = False  # some layer was downloading: a failure now is the registry going away mid-pull
        self.last_news = time.monotonic()  # the engine's retry countdown is no news from the registry

    def take(self, chunk: dict[str, Any]) -> None:
        if "error" in chunk:
            raise pull_failure(str(chunk.get("error")), self.moved)
        if not str(chunk.get("status") or "").startswith("Retrying in"):
            self.last_news = time.monotonic()
        elif time.monotonic() - self.last_news > self.stall:
            # Docker retries a broken download five times, 50 s of countdown in all: past the stall limit
            # the session need not wait for the rest.
            raise ImagePullError(
                f"the registry stopped answering during the pull: the engine kept retrying and nothing came "
                f"for {self.stall:g} s (EMULATE_PULL_STALL_SECONDS)"
            )
        update = _pull_update(chunk)
        if update is not None:
            self.moved = self.moved or update.status == "Downloading"
            self.on_update(update)


# How engines refuse a network whose subnet is used: Docker "Pool overlaps with other one on this address space",
# Podman (which also checks the host's routes) "subnet 198.18.0.0/26 is already used on the host or by another config".
_SUBNET_TAKEN = ("overlap", "already used")

# What a session's container can do that housekeeping must see at once (its other events are its own).
WATCHED_EVENTS = ("start", "die", "destroy", "oom", "kill", "stop", "pause", "unpause")


def nfs_volume(export: str) -> DriverConfig:
    """Docker's local volume driver mounting an NFS export (`server:/path`), as `docker volume create
    --driver local --opt type=nfs` does: made on each machine when a session there first mounts it."""
    server, path = export.split(":", 1)
    return DriverConfig("local", {"type": "nfs", "o": f"addr={server},rw,nfsvers=4", "device": f":{path}"})


def docker_mount(mount: Mount) -> DockerMount:
    if mount.nfs:
        return DockerMount(mount.target, mount.source, type="volume", driver_config=nfs_volume(mount.nfs))
    return DockerMount(mount.target, mount.source, type="bind", read_only=mount.read_only)


SELINUX_MODES = ("auto", "relabel", "disable", "off")


def engine_tmpfs(tmpfs: dict[str, str], facts: EngineFacts | None) -> dict[str, str]:
    """The contract's tmpfs options in the engine's terms: Podman has no `uid=`/`gid=` (it refuses the
    container: `unknown mount option "uid=20001"`) but `U`, which makes the tmpfs the container user's."""
    if facts is None or not facts.tmpfs_owner_by_user:
        return dict(tmpfs)
    translated = {}
    for target, options in tmpfs.items():
        kept = [o for o in options.split(",") if o and not o.startswith(("uid=", "gid="))]
        if len(kept) < len([o for o in options.split(",") if o]):
            kept.append("U")
        translated[target] = ",".join(kept)
    return translated


def selinux_action(mode: str, facts: EngineFacts | None) -> str:
    """What a session's bind mounts need on this engine: "relabel" (`:z`, shared by every session), "disable"
    (`label=disable`: the container runs unconfined by SELinux) or "" (nothing: no SELinux, or `off`)."""
    if mode not in SELINUX_MODES:
        raise InvalidRequest(f"EMULATE_SELINUX is {mode!r}: one of {', '.join(SELINUX_MODES)}")
    if mode == "auto":
        return "relabel" if facts is not None and facts.selinux else ""
    return "" if mode == "off" else mode


def _binds(mounts: list[Mount], action: str) -> tuple[list[DockerMount], list[str]]:
    """Bind mounts as `Mounts`, or, to relabel them, as `Binds` (the Mounts API has no SELinux option)."""
    if action != "relabel":
        return [docker_mount(m) for m in mounts], []
    binds = [f"{m.source}:{m.target}:{'ro' if m.read_only else 'rw'},z" for m in mounts if not m.nfs]
    return [docker_mount(m) for m in mounts if m.nfs], binds


def gpu_requests(devices: list[str], cdi: dict[str, str] | None) -> list[DeviceRequest]:
    """The session's GPUs (NVML uuids): by CDI name where the engine takes GPUs through CDI, else through
    the NVIDIA runtime by uuid."""
    if not devices:
        return []
    if cdi is not None:
        return [DeviceRequest(driver="cdi", device_ids=[cdi[uuid] for uuid in devices])]
    return [DeviceRequest(device_ids=devices, capabilities=[["gpu"]])]


def service_gpus(facts: EngineFacts) -> tuple[DeviceRequest | None, list[str]]:
    """How the service container sees every GPU (to count them and read their figures through NVML): the
    NVIDIA runtime's device request, or CDI's `nvidia.com/gpu=all`, with the CDI spec folders (to mount
    read-only, so the service reads the names the engine does); (None, []) when the engine offers neither."""
    if "nvidia" in facts.runtimes:
        return DeviceRequest(count=-1, capabilities=[["gpu"]]), []
    if not facts.cdi_requests:
        return None, []
    named = {folder: cdi_device_names([folder]) for folder in facts.cdi_spec_dirs or DEFAULT_CDI_DIRS}
    if not any("all" in names for names in named.values()):
        return None, []
    return DeviceRequest(driver="cdi", device_ids=[f"{CDI_GPU_KIND}=all"]), [f for f, names in named.items() if names]


def gpu_refusal(gpus: list[Gpu], facts: EngineFacts, cdi: dict[str, str]) -> str:
    """Why this engine cannot hand these GPUs to sessions, with what to do ("" when it can): through its NVIDIA
    runtime, or through CDI where the engine takes CDI devices and `cdi` (the specs' names by uuid) names each."""
    if not gpus or "nvidia" in facts.runtimes:
        return ""
    here = f"{len(gpus)} GPU(s) here, but {facts.description}"
    if not cdi:
        return (
            f"{here} has no NVIDIA container runtime (nvidia-ctk runtime configure) and no CDI spec names them "
            "(nvidia-ctk cdi generate --output=/etc/cdi/nvidia.yaml)"
        )
    if not facts.cdi_requests:
        wanted = "Podman 5.4 or later" if facts.podman else "Docker 25 or later with CDI enabled"
        return f"{here} cannot take CDI devices through its Docker API ({wanted}), and has no NVIDIA runtime"
    missing = [gpu.uuid for gpu in gpus if gpu.uuid not in cdi]
    if missing:
        return f"the CDI spec does not name GPU(s) {', '.join(missing)}: regenerate it (nvidia-ctk cdi generate)"
    return ""


def create_kwargs(
    spec: ContainerSpec, facts: EngineFacts | None = None, *, selinux: str = "auto", cdi: dict[str, str] | None = None
) -> dict[str, Any]:
    """The Docker SDK's `containers.create` arguments for a session container: the one translation of the
    contract into this engine's terms (the platform and the test kit both start containers from it).
    No facts: rootful Docker's terms. `host_config_extras` holds what the SDK will not pass."""
    action = selinux_action(selinux, facts)
    mounts, binds = _binds(spec.mounts, action)
    kwargs: dict[str, Any] = dict(
        image=spec.image,
        entrypoint=spec.entrypoint,
        command=spec.command,
        name=spec.name,
        environment=spec.environment,
        labels=spec.labels,
        hostname=spec.hostname,
        user=spec.user,
        group_add=[str(g) for g in spec.group_add],
        mem_limit=spec.memory_bytes,
        memswap_limit=spec.memory_bytes,  # equal to the memory limit: no swap
        nano_cpus=spec.nano_cpus,
        pids_limit=spec.pids_limit,
        cap_drop=["ALL"],
        security_opt=["no-new-privileges:true"] + (["label=disable"] if action == "disable" else []),
        network=spec.network,
        mounts=mounts,
        tmpfs=engine_tmpfs(spec.tmpfs, facts),
        working_dir=spec.working_dir,
        log_config=log_config(spec),
        detach=True,
    )
    if binds:
        kwargs["volumes"] = binds
    if spec.restart_on_failure:
        kwargs["restart_policy"] = {"Name": "on-failure", "MaximumRetryCount": 5}
    if spec.gpu_devices:
        kwargs["device_requests"] = gpu_requests(spec.gpu_devices, cdi)
    if spec.layer_max_bytes and (facts is None or facts.layer_limit_possible):
        kwargs["storage_opt"] = {"size": str(spec.layer_max_bytes)}
    return kwargs


def log_options(spec: ContainerSpec) -> dict[str, str]:
    return {"max-size": str(spec.log_max_bytes), "max-file": str(spec.log_files)}


def log_config(spec: ContainerSpec) -> LogConfig:
    """A log the engine rotates: json-file by name, whatever the engine's default driver (journald, say, would
    refuse the options, and `emulate logs` reads json-file everywhere). Podman takes json-file as its k8s-file."""
    return LogConfig(type=LogConfig.types.JSON, config=log_options(spec))


def host_config_extras(spec: ContainerSpec, facts: EngineFacts | None) -> dict[str, Any]:
    """HostConfig fields the SDK refuses to pass (it allows only "host" as a user namespace mode): rootless
    Podman's keep-id, with the contract's uid:gid as the engine user's face inside (Podman 4.3+)."""
    if facts is None or not facts.keep_id:
        return {}
    if not facts.keep_id_as:
        return {"UsernsMode": "keep-id"}
    uid, _, gid = spec.user.partition(":")
    return {"UsernsMode": f"keep-id:uid={uid},gid={gid or uid}"}


def create_container(client: docker.DockerClient, kwargs: dict[str, Any], extras: dict[str, Any]) -> Any:
    """`containers.create`, with the HostConfig fields the SDK would refuse set on the raw host config."""
    if not extras:
        return client.containers.create(**kwargs)
    # The SDK's own translation of the high-level arguments (the one `containers.create` runs), then the extras.
    args = _create_container_args({**kwargs, "version": client.api._version})
    args["host_config"].update(extras)
    created = client.api.create_container(**args)
    return client.containers.get(created["Id"])


def _refused(step: str, exc: docker.errors.APIError) -> EngineRefused:
    """The engine's refusal of a session's container in words the launch's events can carry (Podman's
    `container create: unknown mount option ...`, a runtime's `error setting rlimit ...`)."""
    return EngineRefused(f"The container engine would not {step} the session's container: {_engine_words(exc)}")


def _engine_words(exc: docker.errors.APIError) -> str:
    """The engine's own message (the SDK keeps a body that is not JSON as bytes)."""
    words = exc.explanation or str(exc)
    return (words.decode(errors="replace") if isinstance(words, bytes) else words).strip()


# How engines refuse a size for a container's layer (Docker: "--storage-opt is supported only for overlay over
# xfs with 'pquota' mount option").
_LAYER_SIZE_REFUSED = ("storage-opt", "storage opt", "storageopt", "pquota")
# A fault's OOM kill (`exhaust_memory`): the most the allocation may take past what the container uses, whatever
# its limit; the cap is then rounded up to a multiple of 1000 pages (of 4, 16 or 64 KiB), as the kernel weighs
# oom_score_adj in whole thousandths of the cap's pages: only then does the main process's 1000 outweigh the
# allocating process, which holds nearly all of the cap.
OOM_ROOM_BYTES = 32 * 1024**2
OOM_CAP_STEP = 1000 * 64 * 1024
OOM_WAIT_SECONDS = 5.0  # for the container to end once the allocation began
# As the session's own user: raising a process's oom_score_adj needs no privilege; tail buffers /dev/zero's
# endless "line" until the kernel steps in (coreutils and busybox alike).
_ALLOCATE = "echo 1000 > /proc/1/oom_score_adj && exec tail /dev/zero"


def oom_cap(used: int, limit: int) -> int:
    """The memory cap under which a fault's allocation ends the container (see OOM_CAP_STEP)."""
    cap = -(-(used + OOM_ROOM_BYTES) // OOM_CAP_STEP) * OOM_CAP_STEP
    return min(cap, limit) if limit else cap


STOP_GRACE_SECONDS = 10  # what a session is given to save its work when it is stopped, as `docker stop` gives
ADDRESS_TRIES = 5  # a concurrent launch may take the address picked for this one: pick again


class DockerRuntime:
    NETWORK: dict[str, Any] = {"driver": "bridge"}  # what a user's network is on this engine

    def __init__(
        self,
        helper_labels: dict[str, str],
        client: docker.DockerClient | None = None,
        pull_stall: float = 300.0,
        selinux: str = "auto",
    ) -> None:
        """`helper_labels` mark the short-lived containers that read image files, so a crash never strands one.
        `selinux`: what sessions' bind mounts get where SELinux labels containers (EMULATE_SELINUX)."""
        self._client = client or connect()
        self._helper_labels = helper_labels
        selinux_action(selinux, None)  # a wrong mode stops the service at its start, not at a launch
        self._selinux = selinux
        self._cdi: dict[str, str] | None = None  # GPU uuid -> CDI name, where GPUs go through CDI
        self._pull_stall = pull_stall  # seconds a pull may go without a word from the engine
        self._cpu_samples: dict[str, tuple[int, int]] = {}
        # Logs are read on threads of their own (each read bounded), so they never hold up launches.
        self._log_readers = ThreadPoolExecutor(max_workers=4, thread_name_prefix="logs")
        self._pullers = ThreadPoolExecutor(max_workers=4, thread_name_prefix="pulls")
        self._pulls_running: set[Any] = set()
        self._closing = threading.Event()
        self._events: Any = None
        self._machine: NodeInfo | None = None
        self._facts: EngineFacts | None = None
        self._last_address: dict[str, str] = {}  # per network, where this runtime picks addresses (Podman)
        self._layer_refusal = ""  # why the engine refused a size for a session's layer (then none is asked again)

    async def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        with docker_errors():
            return await asyncio.to_thread(partial(fn, *args, **kwargs))

    # --- containers ---------------------------------------------------------------------

    def _create(self, spec: ContainerSpec) -> Any:
        facts = self.facts()
        kwargs = create_kwargs(spec, facts, selinux=self._selinux, cdi=self._cdi)
        if self._layer_refusal:
            kwargs.pop("storage_opt", None)
        if not facts.macs_follow_addresses:
            kwargs["networking_config"] = self._address_and_mac(spec.network)
        while True:
            try:
                return create_container(self._client, kwargs, host_config_extras(spec, facts))
            except docker.errors.ImageNotFound as exc:
                raise InvalidRequest(f"image '{spec.image}' is not in the local Docker engine") from exc
            except docker.errors.APIError as exc:
                if exc.status_code == 409:  # created meanwhile by a resumed launch
                    return self._client.containers.get(spec.name)
                if "storage_opt" not in kwargs or not any(w in _engine_words(exc).lower() for w in _LAYER_SIZE_REFUSED):
                    raise _refused("create", exc) from exc
                # XFS without project quotas, say: the layer is measured and counted in the user's quota instead.
                self._layer_refusal = str(exc.explanation or exc)
                log.warning("the engine cannot cap sessions' own layers (%s): they are measured", self._layer_refusal)
                kwargs.pop("storage_opt")

    def _address_and_mac(self, network: str) -> dict[str, Any]:
        """The session's endpoint on its network with an address picked here and the MAC Docker would derive
        from it (runtime/addresses.py says why); the engine's own choice when the network is full."""
        info = self._client.api.inspect_network(network)
        config = ((info.get("IPAM") or {}).get("Config") or [{}])[0]
        taken = [c.get("IPv4Address", "") for c in (info.get("Containers") or {}).values()]
        subnet = config.get("Subnet")
        address = (
            free_address(subnet, config.get("Gateway"), taken, self._last_address.get(network)) if subnet else None
        )
        if address is None:
            return {}
        self._last_address[network] = address  # a launch at the same moment takes the next one
        return {network: {"IPAMConfig": {"IPv4Address": address}, "MacAddress": mac_for(address)}}

    def _run(self, spec: ContainerSpec) -> ContainerState:
        spec = replace(spec, image=self.engine_name(spec.image))
        for attempt in range(ADDRESS_TRIES):
            try:
                container = self._client.containers.get(spec.name)
            except docker.errors.NotFound:
                container = self._create(spec)
            if container.status == "created":  # never restart one that ran and exited: its end is the session's
                try:
                    container.start()
                except docker.errors.APIError as exc:
                    # An address this runtime picked was taken meanwhile (the engine checks at start): pick again.
                    if "already allocated" in str(exc) and attempt < ADDRESS_TRIES - 1:
                        self._remove(spec.name)
                        continue
                    raise _refused("start", exc) from exc
            container.reload()
            return _state(container, spec.network)
        raise AssertionError("unreachable: the last try returns or raises")

    async def run(self, spec: ContainerSpec) -> ContainerState:
        return await self._call(self._run, spec)

    def _remove(self, name: str) -> None:
        try:
            self._client.api.remove_container(name, force=True, v=True)
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as exc:
            if exc.status_code != 409:  # removal already in progress
                raise
        self._cpu_samples.pop(name, None)

    async def remove(self, name: str) -> None:
        await self._call(self._remove, name)

    def _stop(self, name: str) -> None:
        with suppress(docker.errors.NotFound):
            self._client.api.stop(name, timeout=STOP_GRACE_SECONDS)

    async def stop(self, name: str) -> None:
        await self._call(self._stop, name)

    def _kill(self, name: str) -> None:
        with suppress(docker.errors.NotFound):
            # A stop with no grace: SIGKILL at once, and, unlike a kill, no restart on failure follows.
            self._client.api.stop(name, timeout=0)

    async def kill(self, name: str) -> None:
        await self._call(self._kill, name)

    def _exhaust_memory(self, name: str) -> bool:
        if not self.facts().limits.memory:
            return False  # a cap the engine does not hold would leave the allocation the machine's memory
        api = self._client.api
        try:
            inspected = api.inspect_container(name)
            if not inspected["State"].get("Running"):
                return False
            stats = api.stats(name, stream=False, one_shot=True)
            used = int((stats.get("memory_stats") or {}).get("usage") or 0)
            cap = oom_cap(used, int(inspected["HostConfig"].get("Memory") or 0))
            # No swap to spill into either; and no restart on failure after the kill (an interactive session's):
            # the fault ends the session.
            api.update_container(name, mem_limit=cap, memswap_limit=cap, restart_policy={"Name": "no"})
            allocation = api.exec_create(name, ["sh", "-c", _ALLOCATE])["Id"]
            api.exec_start(allocation, detach=True)  # refused at once where the image has no sh
        except docker.errors.APIError as exc:
            log.info("could not exhaust the memory of %s: %s", name, _engine_words(exc))
            return False
        return self._ended_by_oom(name, allocation)

    def _ended_by_oom(self, name: str, allocation: str) -> bool:
        """Whether the container ended while the allocation ran (False: it did not, or the allocation ended
        without the kernel's kill, having found no tail or been refused the main process's score)."""
        deadline = time.monotonic() + OOM_WAIT_SECONDS
        while time.monotonic() < deadline:
            state = self._get_state(name)
            if state is None or state.state in ("exited", "dead"):
                return True
            allocator = self._client.api.exec_inspect(allocation)
            if not allocator.get("Running") and allocator.get("ExitCode") not in (None, 137):
                return False
            time.sleep(0.1)
        return False

    async def exhaust_memory(self, name: str) -> bool:
        return await self._call(self._exhaust_memory, name)

    def _outbound_peers(self, name: str) -> set[str] | None:
        api = self._client.api
        try:
            reading = api.exec_create(name, ["cat", "/proc/net/tcp", "/proc/net/tcp6"], stdout=True, stderr=False)
            tables = api.exec_start(reading["Id"])
        except docker.errors.APIError as exc:  # not there, not running, or no cat in it
            log.info("could not read the connections of %s: %s", name, _engine_words(exc))
            return None
        # A table the kernel does not have (no IPv6) makes cat fail after printing the other: both are read.
        return outbound_peers(tables.decode("ascii", "replace")) if isinstance(tables, bytes) else None

    async def outbound_peers(self, name: str) -> set[str] | None:
        return await self._call(self._outbound_peers, name)

    def _get_state(self, name: str) -> ContainerState | None:
        try:
            return _state(self._client.containers.get(name))
        except docker.errors.NotFound:
            return None

    async def state(self, name: str) -> ContainerState | None:
        return await self._call(self._get_state, name)

    def _list(self, label_filters: list[str]) -> list[ContainerState]:
        # One call for all (no inspect per container): the list endpoint's own fields suffice.
        found = []
        for entry in self._client.api.containers(all=True, filters={"label": label_filters}):
            exited = _EXIT_CODE.search(entry.get("Status", ""))
            networks = (entry.get("NetworkSettings") or {}).get("Networks") or {}
            address = next((n.get("IPAddress") for n in networks.values() if n.get("IPAddress")), None)
            found.append(
                ContainerState(
                    name=entry["Names"][0].lstrip("/"),
                    labels=entry.get("Labels") or {},
                    state=entry.get("State", "unknown"),
                    exit_code=int(exited.group(1)) if exited and entry.get("State") in ("exited", "dead") else None,
                    address=address,
                )
            )
        return found

    async def containers(self, label_filters: list[str]) -> list[ContainerState]:
        return await self._call(self._list, label_filters)

    def _written(self, label_filters: list[str]) -> dict[str, int]:
        listed = self._client.api.containers(all=True, filters={"label": label_filters}, size=True)
        return {entry["Names"][0].lstrip("/"): int(entry.get("SizeRw") or 0) for entry in listed}

    async def written(self, label_filters: list[str]) -> dict[str, int]:
        return await self._call(self._written, label_filters)

    def _logs(self, name: str, tail_lines: int, max_bytes: int) -> str:
        try:
            chunks = self._client.api.logs(name, stdout=True, stderr=True, stream=True, follow=False, tail=tail_lines)
        except docker.errors.NotFound:
            return ""
        kept: deque[bytes] = deque()
        size = 0
        try:
            for chunk in chunks:  # streamed: only the newest max_bytes are ever held
                kept.append(chunk)
                size += len(chunk)
                while size > max_bytes and len(kept) > 1:
                    size -= len(kept.popleft())
        finally:
            chunks.close()
        data = b"".join(kept)
        if len(data) > max_bytes:
            cut = len(data) - max_bytes
            if data[cut - 1 : cut] != b"\n":  # drop the line the cut fell in
                cut = data.find(b"\n", cut) + 1 or len(data)
            data = data[cut:]
        return data.decode("utf-8", errors="replace")

    async def logs(self, name: str, tail_lines: int, max_bytes: int) -> str:
        # Their own threads: reading logs never queues launches or listings behind it.
        loop = asyncio.get_running_loop()
        with docker_errors():
            return await loop.run_in_executor(self._log_readers, self._logs, name, tail_lines, max_bytes)

    def _usage(self, name: str) -> Usage | None:
        try:
            stats = self._client.api.stats(name, stream=False, one_shot=True)
        except docker.errors.APIError:
            return None
        memory = stats.get("memory_stats") or {}
        details = memory.get("stats") or {}
        # What kubectl top reports: usage without the reclaimable file cache. Podman gives no breakdown, here or
        # in libpod's own stats (EngineFacts.memory_counts_cache): its figure keeps the cache.
        cache = details.get("total_inactive_file", details.get("inactive_file", 0))
        used = max(0, int(memory.get("usage", 0)) - int(cache))
        cpu = stats.get("cpu_stats") or {}
        total = int((cpu.get("cpu_usage") or {}).get("total_usage", 0))
        system = int(cpu.get("system_cpu_usage") or 0)
        online = int(cpu.get("online_cpus") or 1)
        previous = self._cpu_samples.get(name)
        self._cpu_samples[name] = (total, system)
        cores = 0.0
        if previous and system > previous[1]:
            cores = (total - previous[0]) / (system - previous[1]) * online
        return Usage(memory_bytes=used, cpu_cores=max(0.0, cores))

    async def usage(self, name: str) -> Usage | None:
        try:
            return await self._call(self._usage, name)
        except Unavailable:  # e.g. the container went away mid-call: usage is unknown, not an error
            return None

    # --- images -------------------------------------------------------------------------

    def _image(self, reference: str) -> ImageInfo | None:
        found = self._image_named(reference)
        alias = local_name(reference) if found is None else None
        return self._image_named(alias) if alias else found  # a local image by its localhost/ name

    def _image_named(self, reference: str) -> ImageInfo | None:
        try:
            return _image_info(self._client.images.get(reference))
        except docker.errors.ImageNotFound:
            return None
        except docker.errors.APIError as exc:
            if exc.status_code in (400, 404):  # an invalid reference is no image
                return None
            raise

    def engine_name(self, reference: str) -> str:
        """The name this engine holds `reference` under: the local image a `localhost/<project>/<name>:<tag>`
        name stands for when only that is here (runtime/local_names.py), else `reference` itself."""
        alias = local_name(reference)
        if alias is None or self._image_named(reference) is not None or self._image_named(alias) is None:
            return reference
        return alias

    async def image(self, reference: str) -> ImageInfo | None:
        return await self._call(self._image, reference)

    def _images(self) -> list[ImageInfo]:
        found = []
        for listed in self._client.api.images():  # the SDK's own list, then each one inspected, as it does
            try:
                found.append(_image_info(self._client.images.get(listed["Id"]), self.facts().podman))
            except docker.errors.ImageNotFound:
                continue  # removed between the two (a snapshot's commit step, a build's): not there, not an error
        return found

    async def images(self) -> list[ImageInfo]:
        return await self._call(self._images)

    def _pull(
        self, reference: str, credentials: RegistryCredentials | None, on_update: Callable[[PullUpdate], None]
    ) -> ImageInfo:
        # As the SDK's own pull (tag or digest split off, latest by default), with two differences: no
        # credentials means an anonymous pull (the SDK would send whatever login the service's user has),
        # and a read timeout, so a registry that stops sending fails the pull instead of hanging it.
        repository, tag = parse_repository_tag(reference)
        params = {"fromImage": repository, "tag": tag or "latest"}
        headers = {}
        if credentials is not None:
            headers["X-Registry-Auth"] = encode_header(
                {"username": credentials.username, "password": credentials.secret}
            )
        api = self._client.api
        stream = _PullStream(self._pull_stall, on_update)
        response = None
        try:
            response = api._post(
                api._url("/images/create"), params=params, headers=headers, stream=True, timeout=self._pull_stall
            )
            api._raise_for_status(response)
            self._pulls_running.add(response)
            for chunk in api._stream_helper(response, decode=True):
                stream.take(chunk)
        except docker.errors.APIError as exc:  # refused before the stream began (unknown image, no registry)
            raise pull_failure(exc.explanation or str(exc), stream.moved) from exc
        except (urllib3.exceptions.ReadTimeoutError, requests.exceptions.ReadTimeout) as exc:
            raise ImagePullError(
                f"the registry stopped sending: nothing came for {self._pull_stall:g} s (EMULATE_PULL_STALL_SECONDS)"
            ) from exc
        except (urllib3.exceptions.HTTPError, requests.exceptions.RequestException) as exc:  # the stream broke
            if self._closing.is_set():
                raise ImagePullError("the emulator stopped during the pull") from exc
            raise pull_failure(str(exc), stream.moved) from exc
        finally:
            if response is not None:
                self._pulls_running.discard(response)
                response.close()
        if self._closing.is_set():  # broken off by close(): the stream just ended
            raise ImagePullError("the emulator stopped during the pull")
        image = self._image(reference)
        if image is None:  # removed again at once: nothing to run
            raise ImagePullError(f"the engine reported {reference} pulled, but it is not there")
        return image

    async def pull(
        self, reference: str, credentials: RegistryCredentials | None, on_update: Callable[[PullUpdate], None]
    ) -> ImageInfo:
        # Their own threads: long pulls never hold up the other engine calls (or each other's queue).
        loop = asyncio.get_running_loop()
        with docker_errors():
            return await loop.run_in_executor(self._pullers, self._pull, reference, credentials, on_update)

    def _container_image(self, name: str) -> ImageInfo | None:
        try:
            image_id = self._client.api.inspect_container(name)["Image"]
            return _image_info(self._client.images.get(image_id), self.facts().podman)
        except docker.errors.NotFound:
            return None

    async def container_image(self, name: str) -> ImageInfo | None:
        return await self._call(self._container_image, name)

    def _snapshot(self, request: SnapshotRequest) -> ImageInfo:
        refusal = self.facts().snapshot_refusal
        if refusal:
            raise InvalidRequest(refusal)
        made = save_snapshot(self._client, request, datetime.now(UTC))
        return _image_info(self._client.images.get(made))

    async def snapshot(self, request: SnapshotRequest) -> ImageInfo:
        return await self._call(self._snapshot, request)

    def _read_image_files(self, image: str, paths: list[str]) -> dict[str, str]:
        with ImageFiles(self._client, self.engine_name(image), self._helper_labels) as files:
            return {path: files.read(path) for path in paths}

    async def read_image_files(self, image: str, paths: list[str]) -> dict[str, str]:
        return await self._call(self._read_image_files, image, paths)

    # --- networks -----------------------------------------------------------------------

    def _networks(self) -> list[NetworkInfo]:
        found = []
        for entry in self._client.api.networks():  # the listing has names, labels and subnets: no inspects
            subnets = [c["Subnet"] for c in ((entry.get("IPAM") or {}).get("Config") or []) if c.get("Subnet")]
            found.append(NetworkInfo(entry["Name"], entry.get("Labels") or {}, subnets))
        return found

    async def networks(self) -> list[NetworkInfo]:
        return await self._call(self._networks)

    def _create_network(self, name: str, labels: dict[str, str], subnet: str) -> None:
        if has_network(self._client, name):
            return
        ipam = IPAMConfig(pool_configs=[IPAMPool(subnet=subnet)])
        try:
            self._client.networks.create(name, labels=labels, ipam=ipam, check_duplicate=True, **self.NETWORK)
        except docker.errors.APIError as exc:
            if exc.status_code == 409:  # made meanwhile
                return
            words = _engine_words(exc)
            if any(taken in words.lower() for taken in _SUBNET_TAKEN):
                raise SubnetTaken(f"subnet {subnet} is in use: {words}") from exc
            raise

    async def create_network(self, name: str, labels: dict[str, str], subnet: str) -> None:
        await self._call(self._create_network, name, labels, subnet)

    def _connect(self, network: str, container: str) -> None:
        try:
            self._client.api.connect_container_to_network(container, network)
        except docker.errors.APIError as exc:
            # Attached already is fine: Docker says 403 "... already exists", Podman 500 "network is already connected".
            if not any(done in str(exc) for done in ("already exists", "already connected")):
                raise

    async def connect(self, network: str, container: str) -> None:
        await self._call(self._connect, network, container)

    def _remove_network(self, name: str, detach: list[str]) -> None:
        for container in detach:
            with suppress(docker.errors.APIError):  # gone already, or never attached
                self._client.api.disconnect_container_from_network(container, name, force=True)
        with suppress(docker.errors.NotFound):
            self._client.api.remove_network(name)

    async def remove_network(self, name: str, detach: list[str]) -> None:
        await self._call(self._remove_network, name, detach)

    # --- the engine itself: its facts, its machine, GPUs, its events, closing ------------

    def _nodes(self) -> list[NodeInfo]:
        if self._machine is None:  # its cores and memory do not change while the service runs: asked once
            info = self._client.info()
            self._machine = NodeInfo(info.get("Name", "localhost"), "ready", True, info["NCPU"], info["MemTotal"])
        return [self._machine]

    async def nodes(self) -> list[NodeInfo]:
        """This engine's machine: one node (what the sessions hold of it is the store's to say)."""
        return await self._call(self._nodes)

    def facts(self) -> EngineFacts:
        if self._facts is None:  # the engine does not change kind while the service runs: asked once
            with docker_errors():
                self._facts = engine_facts(self._client)
        return self._facts

    def gpu_access(self, gpus: list[Gpu], cdi_folders: tuple[str, ...] = ()) -> str:
        """How sessions will get these GPUs: "" when the engine can hand them over (its NVIDIA runtime, or CDI
        specs naming them on an engine that takes CDI devices), else why not and what to do."""
        facts = self.facts()
        found = cdi_names(gpus, cdi_device_names(cdi_folders or facts.cdi_spec_dirs or DEFAULT_CDI_DIRS))
        refusal = gpu_refusal(gpus, facts, found)
        if not refusal and "nvidia" not in facts.runtimes:
            self._cdi = found  # sessions' GPUs go by these names
        return refusal

    def watch(self, label_filters: list[str], on_change: Callable[[], None]) -> None:
        threading.Thread(target=self._watch, args=(label_filters, on_change), name="engine events", daemon=True).start()

    def _watch(self, label_filters: list[str], on_change: Callable[[], None]) -> None:
        """The engine's event stream, kept open (reconnected after an engine restart, every 2 s)."""
        filters = {"type": "container", "label": label_filters, "event": list(WATCHED_EVENTS)}
        broken = False
        while not self._closing.is_set():
            try:
                self._events = self._client.events(decode=True, filters=filters)
                if self._closing.is_set():  # close() came while this stream was being opened
                    self._events.close()
                    return
                if broken:
                    log.warning("watching the engine's events again")
                broken = False
                on_change()  # (re)connected: whatever happened meanwhile is looked at once
                for _ in self._events:
                    on_change()
            except Exception as exc:  # the engine went away (or we are closing): try again shortly
                if not broken and not self._closing.is_set():
                    log.warning("lost the engine's events (%s); housekeeping runs on its timer meanwhile", exc)
                broken = True
            self._closing.wait(2.0)

    def close(self) -> None:
        """Break off the pulls in flight and the event watch (service shutdown), so their threads end now."""
        self._closing.set()
        if self._events is not None:
            with suppress(Exception):
                self._events.close()
        for response in list(self._pulls_running):
            with suppress(OSError, AttributeError):
                raw = self._client.api._get_raw_response_socket(response)
                getattr(raw, "_sock", raw).shutdown(socket.SHUT_RDWR)
        self._pullers.shutdown(wait=False, cancel_futures=True)
        self._log_readers.shutdown(wait=False, cancel_futures=True)
