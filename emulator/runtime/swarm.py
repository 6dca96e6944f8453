"""The Docker Swarm adapter: each session is a Swarm service with one task, placed by Swarm on one of the
swarm's machines; the platform (service and gateway) runs on a manager and talks to its engine.

The contract is the single engine's (runtime.docker.create_kwargs), expressed in Swarm's terms, with what
Engine API 1.41 cannot say left to the nodes' engines or given up (README, "More than one machine"):
- limits as today, and the session's requests as reservations, which Swarm places by;
- uid:gid, groups, all capabilities dropped; no-new-privileges is each node engine's `--no-new-privileges`;
- /scratch is a tmpfs of the same size, but Swarm mounts it `noexec` and root's (mode 1777, not 0700);
- no restarts (restart condition none): a session's end is its end, as a job's;
- endpoint mode dnsrr: the service's name resolves to its task's address on the user's overlay network,
  so the gateway routes by name exactly as on one engine (and no IPVS is needed);
- what one engine bind-mounts read-only from the service's state folder (skaha's ConfigMaps: the launch
  scripts, the desktop's templates, the session's passwd and group, the X cookie) travels as Swarm
  configs, which every machine gets from the manager; only /arc is a folder (or volume) of the machines.

A task's state becomes a ContainerState: new to starting is `pending` (with Swarm's reason, such as "no
suitable node (insufficient resources on 3 nodes)"), then running, then exited with its code; a task on a
node that went down is `dead` because its machine was lost.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from contextlib import suppress
from dataclasses import replace
from pathlib import Path
from typing import Any

import docker
import docker.errors
from docker.types import (
    ConfigReference,
    DriverConfig,
    EndpointSpec,
    NetworkAttachmentConfig,
    Resources,
    RestartPolicy,
    ServiceMode,
    TaskTemplate,
)
from docker.types import ContainerSpec as SwarmContainerSpec
from docker.types import Mount as SwarmMount

from emulator import labels
from emulator.errors import InvalidRequest, Unavailable
from emulator.runtime.base import ContainerSpec, ContainerState, ImageInfo, Mount, NodeInfo, SnapshotRequest, Usage
from emulator.runtime.docker import DockerRuntime, docker_errors, docker_mount, log_options
from emulator.runtime.endpoint import client_from_environment

NODE_LOST = "its machine was lost: node {node} stopped answering the swarm's manager"
PENDING = {"new", "allocated", "pending", "assigned", "accepted", "preparing", "ready", "starting"}
ENDED = {"complete", "failed", "shutdown", "rejected", "orphaned", "remove"}
GPU_KIND = "NVIDIA-GPU"
SWARM_TASK_LABEL = "com.docker.swarm.service.id"  # on every container Swarm runs for a service
ROLE_CONFIG = "config"  # a Swarm config carrying a session's read-only file
WATCH_SECONDS = 1.0  # how often the task states are compared (Swarm has no event for a task's change)
LOG_SECONDS = 10.0  # a service's logs from a lost node never come: stop waiting for them


def _tmpfs(options: str) -> tuple[int, int]:
    """Size and mode from a `size=N,exec,mode=0700,uid=U,gid=G` tmpfs option string: Swarm takes only these
    two, and the session's uid must still write there, so the mode is the sticky world-writable /tmp's."""
    size = next((int(o.split("=", 1)[1]) for o in options.split(",") if o.startswith("size=")), 0)
    return size, 0o1777


def travels_as_config(mount: Mount) -> bool:
    """A read-only file or folder of the service's (a ConfigMap of skaha's): the machine running the session
    does not have it, so it goes there as Swarm configs. /arc (read-write, shared, or NFS) stays a mount."""
    return mount.read_only and not mount.nfs


def config_files(mount: Mount) -> list[tuple[Path, str]]:
    """(host file, path in the container) of each file a config-borne mount carries: a file, or a folder's files."""
    source = Path(mount.source)
    if source.is_dir():
        return [(f, f"{mount.target}/{f.name}") for f in sorted(source.iterdir()) if f.is_file()]
    return [(source, mount.target)]


def service_spec(spec: ContainerSpec, configs: list[ConfigReference] | None = None) -> dict[str, Any]:
    """`APIClient.create_service`'s arguments for a session: the one translation of the contract into Swarm
    (`configs`: what its read-only mounts became)."""
    mounts = [docker_mount(m) for m in spec.mounts if not travels_as_config(m)]  # Swarm's mounts are the engine's
    for target, options in spec.tmpfs.items():
        size, mode = _tmpfs(options)
        mounts.append(SwarmMount(target, None, type="tmpfs", tmpfs_size=size, tmpfs_mode=mode))
    container = SwarmContainerSpec(
        image=spec.image,
        command=spec.entrypoint,  # Swarm's command replaces the ENTRYPOINT, its args the CMD (as Kubernetes)
        args=spec.command,
        hostname=spec.hostname,
        env=spec.environment,
        workdir=spec.working_dir,
        user=spec.user,
        labels=spec.labels,
        mounts=mounts,
        groups=[str(g) for g in spec.group_add],
        cap_drop=["ALL"],
        configs=configs or None,
    )
    resources = Resources(
        cpu_limit=spec.nano_cpus,
        mem_limit=spec.memory_bytes,
        cpu_reservation=spec.nano_cpus_reservation or None,
        mem_reservation=spec.memory_reservation_bytes or None,
        # GPUs the machines advertise (dockerd --node-generic-resource NVIDIA-GPU=<uuid>): Swarm picks them
        # and names them to the NVIDIA runtime in DOCKER_RESOURCE_NVIDIA-GPU (its swarm-resource setting).
        generic_resources={GPU_KIND: spec.gpus} if spec.gpus else None,
    )
    resources["Limits"]["Pids"] = spec.pids_limit  # in API 1.41, not yet in the SDK's arguments
    task = TaskTemplate(
        container,
        resources=resources,
        restart_policy=RestartPolicy(condition="none"),
        networks=[NetworkAttachmentConfig(spec.network)],
        log_driver=DriverConfig("json-file", log_options(spec)),  # each machine's engine rotates it
    )
    return {
        "task_template": task,
        "name": spec.name,
        "labels": spec.labels,
        "mode": ServiceMode("replicated", replicas=1),
        "endpoint_spec": EndpointSpec(mode="dnsrr"),
    }


def _address(task: dict[str, Any]) -> str | None:
    for attachment in task.get("NetworksAttachments") or []:
        addresses = attachment.get("Addresses") or []
        if addresses:
            return str(addresses[0]).split("/", 1)[0]
    return None


def task_state(
    name: str, labels: dict[str, str], task: dict[str, Any] | None, nodes: dict[str, dict[str, Any]]
) -> ContainerState:
    """A service's newest task as a ContainerState (no task yet: pending)."""
    if task is None:
        return ContainerState(name, labels, "pending", None, None)
    status = task.get("Status") or {}
    state = status.get("State", "new")
    node_id = task.get("NodeID") or ""
    node = nodes.get(node_id)
    node_name = (node or {}).get("Description", {}).get("Hostname") if node else None
    exit_code = (status.get("ContainerStatus") or {}).get("ExitCode")
    if node is not None and node.get("Status", {}).get("State") == "down" and state not in ("complete", "failed"):
        return ContainerState(name, labels, "dead", None, None, reason=NODE_LOST.format(node=node_name), node=node_name)
    if state in PENDING:
        reason = status.get("Err") or None
        return ContainerState(name, labels, "pending", None, None, reason=reason, node=node_name)
    if state == "running":  # a session's task is on one network, the user's (dnsrr: no ingress)
        return ContainerState(name, labels, "running", None, _address(task), node=node_name)
    if state in ("complete", "failed"):  # its own end: the exit code says it (Swarm's "non-zero exit" adds nothing)
        return ContainerState(name, labels, "exited", exit_code, None, node=node_name)
    # Rejected (the machine could not start it: a missing image, a bad mount), shut down or orphaned.
    reason = status.get("Err") or f"Swarm says the task is {state}"
    return ContainerState(name, labels, "dead", exit_code, None, reason=reason, node=node_name)


def gpu_count(generic: list[dict[str, Any]] | None) -> int:
    """How many GPUs a list of Swarm generic resources names (one per named resource, or a discrete count)."""
    count = 0
    for resource in generic or []:
        named, discrete = resource.get("NamedResourceSpec"), resource.get("DiscreteResourceSpec")
        if named and named.get("Kind") == GPU_KIND:
            count += 1
        elif discrete and discrete.get("Kind") == GPU_KIND:
            count += int(discrete.get("Value", 0))
    return count


def _newest(tasks: list[dict[str, Any]]) -> dict[str, Any] | None:
    return max(tasks, key=lambda t: t.get("Version", {}).get("Index", 0), default=None)


class SwarmRuntime(DockerRuntime):
    """Sessions as Swarm services. Images, files in images, pulls and networks are the manager engine's (its
    user networks are attachable overlays, which the gateway joins as on one engine)."""

    NETWORK = {"driver": "overlay", "attachable": True, "scope": "swarm"}

    def __init__(
        self,
        helper_labels: dict[str, str],
        client: docker.DockerClient | None = None,
        encrypted: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(helper_labels, client, **kwargs)
        if encrypted:  # IPsec between machines, where their kernels have it
            self.NETWORK = {**self.NETWORK, "options": {"encrypted": ""}}
        # Configs carry the instance's labels (helpers' with the role changed) and a name of the instance's.
        self._config_labels = {**helper_labels, labels.ROLE: ROLE_CONFIG}
        self._instance = helper_labels.get(labels.INSTANCE, "")
        self._config_prefix = f"{self._instance or 'emulate'}-config-"
        self._config_ids: dict[str, str] = {}  # the configs this service made or found, by name
        self._config_lock = threading.Lock()  # launches and deletes run on several threads
        # Logs of a task on a lost machine never come: a client whose reads give up frees its thread.
        self._log_client = client_from_environment(timeout=LOG_SECONDS).api
        with docker_errors():
            swarm = self._client.info().get("Swarm") or {}
        if not swarm.get("ControlAvailable"):
            raise Unavailable(
                "this Docker engine is not a swarm manager: run `docker swarm init` here (or join it to a swarm as "
                "a manager) before `emulate up --swarm`"
            )

    # --- sessions -----------------------------------------------------------------------------

    def _nodes_by_id(self) -> dict[str, dict[str, Any]]:
        return {node["ID"]: node for node in self._client.api.nodes()}

    def _state_of(self, service: dict[str, Any], tasks: list[dict[str, Any]], nodes: dict[str, Any]) -> ContainerState:
        spec = service.get("Spec") or {}
        mine = [t for t in tasks if t.get("ServiceID") == service["ID"]]
        return task_state(spec.get("Name", ""), spec.get("Labels") or {}, _newest(mine), nodes)

    def _config(self, path: Path, target: str) -> ConfigReference:
        """The file as a Swarm config, named by its content (the same script is one config for every session)."""
        data = path.read_bytes()
        name = f"{self._config_prefix}{hashlib.sha256(data).hexdigest()[:24]}"
        with self._config_lock:
            config_id = self._config_ids.get(name)  # made for an earlier session: no call at all
        if config_id is None:
            try:
                config_id = self._client.api.create_config(name, data, labels=self._config_labels)["ID"]
            except docker.errors.APIError as exc:
                if exc.status_code != 409:  # 409: made by another session already
                    raise
                config_id = self._client.api.inspect_config(name)["ID"]
            with self._config_lock:
                self._config_ids[name] = config_id
        return ConfigReference(config_id, name, filename=target, uid="0", gid="0", mode=path.stat().st_mode & 0o777)

    def _run(self, spec: ContainerSpec) -> ContainerState:
        spec = replace(spec, image=self.engine_name(spec.image))
        for attempt in (1, 2):  # a shared config another session's removal took away meanwhile is made again
            configs = [
                self._config(path, target)
                for mount in spec.mounts
                if travels_as_config(mount)
                for path, target in config_files(mount)
            ]
            try:
                self._client.api.create_service(**service_spec(spec, configs))
                break
            except docker.errors.APIError as exc:
                if exc.status_code == 409:  # made meanwhile by a resumed launch
                    break
                gone = exc.status_code in (400, 404) and "not found" in str(exc.explanation or exc).lower()
                if attempt == 1 and gone:
                    with self._config_lock:  # one of them was removed meanwhile: look them all up again
                        self._config_ids.clear()
                    continue
                for config in configs:  # no service uses them: they go (shared ones in use stay)
                    self._drop_config(config["ConfigID"])
                raise
        state = self._get_state(spec.name)
        return state if state is not None else ContainerState(spec.name, spec.labels, "pending", None, None)

    def _stop(self, name: str) -> None:
        self._remove(name)  # a service has no stopped state to keep: its session is then Failed as vanished

    def _kill(self, name: str) -> None:
        self._stop(name)

    def _exhaust_memory(self, name: str) -> bool:
        return False  # its container runs on whichever machine Swarm chose, out of this engine's reach

    def _remove(self, name: str) -> None:
        # Swarm removes the task's container on whichever node it ran.
        try:
            service = self._client.api.inspect_service(name)
        except docker.errors.NotFound:
            super()._remove(name)  # not a session: a plain container of the manager's (an image-reading helper)
            return
        used = (service.get("Spec", {}).get("TaskTemplate", {}).get("ContainerSpec", {}).get("Configs")) or []
        with suppress(docker.errors.NotFound):
            self._client.api.remove_service(name)
        if used:
            services = self._client.api.services(filters={"label": f"{labels.INSTANCE}={self._instance}"})
            still = {
                c["ConfigID"] for s in services for c in s["Spec"]["TaskTemplate"]["ContainerSpec"].get("Configs") or []
            }
            for config in used:
                if config["ConfigID"] not in still:
                    self._drop_config(config["ConfigID"])

    def _drop_config(self, config_id: str) -> None:
        """A config no service uses any more goes (one a launch took up meanwhile stays: Swarm refuses, 400)."""
        with suppress(docker.errors.NotFound, docker.errors.APIError):
            self._client.api.remove_config(config_id)
        with self._config_lock:
            self._config_ids = {name: known for name, known in self._config_ids.items() if known != config_id}

    def _get_state(self, name: str) -> ContainerState | None:
        try:
            service = self._client.api.inspect_service(name)
        except docker.errors.NotFound:
            return None
        tasks = self._client.api.tasks(filters={"service": service["ID"]})
        return self._state_of(service, tasks, self._nodes_by_id())

    def _list(self, label_filters: list[str]) -> list[ContainerState]:
        """Sessions (services) and the manager's own containers (image-reading helpers) with these labels; a
        session's task container, which carries its labels too, is its service's, not listed twice."""
        plain = [c for c in super()._list(label_filters) if SWARM_TASK_LABEL not in c.labels]
        services = self._client.api.services(filters={"label": label_filters})
        if not services:
            return plain
        tasks = self._client.api.tasks()  # one call for all: filtered here by service
        nodes = self._nodes_by_id()
        return plain + [self._state_of(service, tasks, nodes) for service in services]

    def _logs(self, name: str, tail_lines: int, max_bytes: int) -> str:
        try:
            chunks = self._log_client.service_logs(
                name, stdout=True, stderr=True, follow=False, tail=tail_lines, timestamps=False
            )
        except docker.errors.NotFound:
            return ""
        data = b"".join(chunks)
        return data[-max_bytes:].decode("utf-8", errors="replace")

    async def logs(self, name: str, tail_lines: int, max_bytes: int) -> str:
        try:
            return await super().logs(name, tail_lines, max_bytes)
        except Unavailable as exc:
            if "did not answer in time" not in exc.message:
                raise
            return f"(no output: the machine running {name} did not send its logs within {LOG_SECONDS:.0f} s)\n"

    # A session runs wherever Swarm placed it: its layer is on that machine's engine, out of this one's reach, and
    # an image made there would be that machine's alone (Swarm places the next session anywhere).
    NO_SNAPSHOTS = (
        "saving a session as an image is not offered across a swarm: the session's files are on the machine Swarm "
        "placed it on, and an image made there would exist on that machine alone"
    )

    def _container_image(self, name: str) -> ImageInfo | None:
        raise InvalidRequest(self.NO_SNAPSHOTS)

    def _snapshot(self, request: SnapshotRequest) -> ImageInfo:
        raise InvalidRequest(self.NO_SNAPSHOTS)

    def _usage(self, name: str) -> Usage | None:
        return None  # the task's cgroup is on its node, out of this engine's reach

    # --- the swarm ------------------------------------------------------------------------------

    def _nodes(self) -> list[NodeInfo]:
        nodes = self._client.api.nodes()
        live = [t for t in self._client.api.tasks() if (t.get("Status") or {}).get("State") not in ENDED]
        found = []
        for node in nodes:
            resources = node.get("Description", {}).get("Resources") or {}
            held = [t for t in live if t.get("NodeID") == node["ID"]]
            reserved = [(t.get("Spec", {}).get("Resources") or {}).get("Reservations") or {} for t in held]
            found.append(
                NodeInfo(
                    name=node.get("Description", {}).get("Hostname", node["ID"][:12]),
                    state=node.get("Status", {}).get("State", "unknown"),
                    available=node.get("Spec", {}).get("Availability") == "active",
                    cores=resources.get("NanoCPUs", 0) / 1e9,
                    memory_bytes=int(resources.get("MemoryBytes", 0)),
                    reserved_cores=sum(r.get("NanoCPUs", 0) for r in reserved) / 1e9,
                    reserved_memory_bytes=sum(int(r.get("MemoryBytes", 0)) for r in reserved),
                    sessions=len(held),
                    manager=node.get("Spec", {}).get("Role") == "manager",
                    gpus=gpu_count(resources.get("GenericResources")),
                    reserved_gpus=sum(gpu_count(r.get("GenericResources")) for r in reserved),
                )
            )
        return sorted(found, key=lambda n: n.name)

    def watch(self, label_filters: list[str], on_change: Callable[[], None]) -> None:
        threading.Thread(target=self._watch, args=(label_filters, on_change), name="swarm tasks", daemon=True).start()

    def _watch(self, label_filters: list[str], on_change: Callable[[], None]) -> None:
        """Swarm reports no event when a task changes state, so the states are compared every WATCH_SECONDS."""
        last: object = None
        while not self._closing.wait(WATCH_SECONDS if last is not None else 0):
            try:
                seen = sorted((s.name, s.state, s.reason or "") for s in self._list(label_filters))
            except Exception:
                continue  # the manager is busy or restarting: compare again next time
            if seen != last:
                last = seen
                on_change()
