"""`emulate up` / `down` / `status`: the instance's network, gateway and service containers.

Like a Compose project: everything carries the instance label, so `up` is
idempotent (it starts what is missing and recreates what is out of date) and
`down` finds what to stop by label. Session containers and /arc are left alone
by `down`, so sessions and data survive a down/up.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import socket
import time
from dataclasses import dataclass
from typing import Any

import docker
import docker.errors
import httpx

from emulator import labels, naming
from emulator.client.discovery import forget_url, local_url, record_url, recorded_base_url, tls_verify
from emulator.core.store import Store
from emulator.errors import ConfigError, EmulatorError, Unavailable
from emulator.gateway.caddy import ADMIN_SOCKET_FOLDER_IN_GATEWAY, DATA_IN_GATEWAY, LISTEN_PORT
from emulator.host.images import GATEWAY_IMAGE
from emulator.runtime.docker import docker_errors, has_network, service_gpus
from emulator.runtime.endpoint import service_socket
from emulator.runtime.engine import EngineFacts, engine_facts
from emulator.settings import Settings

log = logging.getLogger(__name__)


def security_options(facts: EngineFacts, selinux: str = "auto") -> list[str]:
    """The platform's own containers bind-mount host folders and, for the service, the engine's socket:
    under SELinux no label lets a container use those, so their labelling is turned off (as the engines'
    own docs advise for a container that drives the engine; relabelling the socket or the user's folders
    with `:z` would change them for the host). EMULATE_SELINUX=off leaves it to the engine."""
    return ["label=disable"] if facts.selinux and selinux != "off" else []


def serve_refusal(facts: EngineFacts) -> str | None:
    """Why `emulate serve` cannot run its service on this host, or None when it can."""
    if facts.rootless or facts.desktop:
        where = "in a VM (Docker Desktop)" if facts.desktop else "in a network namespace of a rootless engine"
        return (
            f"`emulate serve` runs the service on the host, where the gateway cannot reach it: the platform's "
            f"network lives {where}; run `emulate up` instead (the service in a container)"
        )
    return None


def _check_bindable(address: str) -> None:
    """Refuse, before anything starts, an address of the platform network this host cannot listen on
    (an engine whose networks are not the host's own, which the engine's facts did not reveal)."""
    with socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET) as probe:
        try:
            probe.bind((address, 0))
        except OSError as exc:
            raise ConfigError(
                f"`emulate serve` cannot listen on {address}, the platform network's address ({exc.strerror}): "
                "this engine's networks are not this host's; run `emulate up` instead (the service in a container)"
            ) from None


def prepare_folders(settings: Settings) -> None:
    settings.layout.gateway_dir.mkdir(parents=True, exist_ok=True)
    settings.layout.gateway_dir.chmod(0o700)  # the admin socket and the access log: the platform's alone
    settings.layout.gateway_data.mkdir(parents=True, exist_ok=True)
    for sub in ("home", "projects"):
        path = settings.layout.arc_path / sub
        path.mkdir(parents=True, exist_ok=True)
        path.chmod(0o755)


@dataclass
class PlatformStatus:
    url: str
    service: str  # running | exited | missing ...
    gateway: str
    sessions: int
    engine: str  # EngineFacts.description, e.g. "rootless Podman 4.3.1 (cgroup v1)"
    facts: dict[str, Any]  # every engine fact, for `status --json`
    faults: bool = False  # launches may ask for faults (EMULATE_FAULTS=true, as the service runs)


def _runs_with_faults(service: Any) -> bool:
    """Whether the service container was started with EMULATE_FAULTS on (what it does, whatever the settings of
    the command that asks)."""
    environment = dict(entry.partition("=")[::2] for entry in service.attrs["Config"].get("Env") or [])
    return Settings.model_validate({"faults": environment.get("EMULATE_FAULTS") or False}).faults


class InstanceContainers:
    def __init__(self, settings: Settings, client: docker.DockerClient) -> None:
        self.settings = settings
        self.client = client
        self.prefix = settings.prefix
        self._facts: EngineFacts | None = None

    @property
    def facts(self) -> EngineFacts:
        if self._facts is None:  # asked once per command
            with docker_errors():
                self._facts = engine_facts(self.client)
        return self._facts

    # --- pieces -------------------------------------------------------------------------

    def ensure_network(self) -> None:
        name = self.settings.network
        if not has_network(self.client, name):
            self.client.networks.create(
                name, driver="bridge", labels=labels.platform_labels(self.settings.instance, labels.ROLE_NETWORK)
            )

    def _container(self, name: str) -> Any | None:
        try:
            return self.client.containers.get(name)
        except docker.errors.NotFound:
            return None

    def _ensure(self, name: str, image: str, fingerprint: str, **kwargs: Any) -> None:
        """Start the container, recreating it when its image or configuration changed, or when it would not
        start (a container created with settings the engine then refused would be refused forever)."""
        current = self._container(name)
        image_id = self.client.images.get(image).id
        security = security_options(self.facts, self.settings.selinux)
        if security:  # part of what the container is: a change of it recreates the container
            fingerprint = f"{fingerprint} {security}"
        if current is not None:
            same = current.image.id == image_id and current.labels.get(labels.CONFIG_HASH) == fingerprint
            if same and current.status == "running":
                return
            if same:
                try:
                    current.start()
                    return
                except docker.errors.APIError as exc:
                    log.warning("recreating %s, which would not start: %s", name, exc.explanation or exc)
            current.remove(force=True)
        kwargs["labels"] = {**kwargs.get("labels", {}), labels.CONFIG_HASH: fingerprint}
        if security:
            kwargs["security_opt"] = security
        container = self.client.containers.create(
            image,
            name=name,
            restart_policy={"Name": self.facts.restart_policy},
            network=self.settings.network,
            **kwargs,
        )
        try:
            container.start()
        except docker.errors.APIError:
            container.remove(force=True)  # nothing left behind that the next `up` would trip over
            raise

    def ensure_gateway(self) -> None:
        s = self.settings
        dns = self.facts.gateway_dns_options
        ports = {f"{LISTEN_PORT}/tcp": (s.host, s.port)}
        mounts = [
            docker.types.Mount(ADMIN_SOCKET_FOLDER_IN_GATEWAY, str(s.layout.gateway_dir), type="bind"),
            docker.types.Mount(DATA_IN_GATEWAY, str(s.layout.gateway_data), type="bind"),
        ]
        self._ensure(
            naming.gateway_container(self.prefix),
            GATEWAY_IMAGE,
            json.dumps(
                [s.host, s.port, str(s.layout.state_path), DATA_IN_GATEWAY, s.gateway_cpus] + ([dns] if dns else [])
            ),
            ports=ports,
            mounts=mounts,
            environment={"XDG_DATA_HOME": DATA_IN_GATEWAY, "GOMAXPROCS": str(s.gateway_cpus)},
            labels=labels.platform_labels(s.instance, labels.ROLE_GATEWAY),
            **({"dns_opt": dns} if dns else {}),
        )

    def ensure_service(self) -> None:
        s = self.settings
        same_path = [str(s.layout.state_path), str(s.layout.arc_path)]
        mounts = [docker.types.Mount(p, p, type="bind") for p in same_path]
        for folder in (s.layout.config_path, s.profiles_dir):
            mounts.append(docker.types.Mount(str(folder), str(folder), type="bind", read_only=True))
        engine_socket = service_socket(self.client, self.facts)  # the engine this client reached, contexts too
        mounts.append(docker.types.Mount("/var/run/docker.sock", engine_socket, type="bind"))
        environment = s.as_environment()

        def start(
            environment: dict[str, str], gpu_mounts: list[docker.types.Mount] | None = None, **extra: Any
        ) -> None:
            self._ensure(
                naming.service_container(self.prefix),
                s.service_image,
                json.dumps(environment, sort_keys=True),
                environment=environment,
                mounts=mounts + (gpu_mounts or []),
                labels=labels.platform_labels(s.instance, labels.ROLE_SERVICE),
                **extra,
            )

        # The service sees every GPU, through the NVIDIA runtime or CDI, to count them and read their figures
        # through NVML (the driver's utility library only: it runs nothing on them); sessions get theirs by uuid.
        every_gpu, cdi_folders = service_gpus(self.facts)
        if every_gpu is None:
            start(environment)
            return
        cdi = [docker.types.Mount(f, f, type="bind", read_only=True) for f in cdi_folders]
        try:
            start({**environment, "NVIDIA_DRIVER_CAPABILITIES": "utility"}, cdi, device_requests=[every_gpu])
        except docker.errors.APIError as exc:  # the runtime or CDI is there, but no driver or GPU answers it
            log.warning("the service starts without GPUs: the engine refused them (%s)", exc.explanation)
            start(environment)

    # --- verbs --------------------------------------------------------------------------

    def up(self, timeout: float = 90) -> str:
        prepare_folders(self.settings)
        with docker_errors():
            if self.settings.orchestrator == "swarm" and not self._swarm():
                raise ConfigError(
                    "`up --swarm` runs on a swarm manager: this engine is none (run `docker swarm init` here, "
                    "then `docker swarm join` on the other machines)"
                )
            self.ensure_network()
            self.ensure_gateway()
            self.ensure_service()
            self._wait_available(timeout)
        record_url(self.settings)
        return self.settings.base_url

    def up_without_service(self) -> str:
        """Network and gateway for a service run on the host (`emulate serve`); returns the host's
        address on the platform network, where that service must listen for the gateway to reach it."""
        refusal = serve_refusal(self.facts)
        if refusal is not None:
            raise ConfigError(refusal)
        prepare_folders(self.settings)
        with docker_errors():
            self.ensure_network()
            network = self.client.networks.get(self.settings.network)
            address = str(network.attrs["IPAM"]["Config"][0]["Gateway"])
            _check_bindable(address)
            self.ensure_gateway()
        record_url(self.settings)
        return address

    def restart_advice(self) -> str | None:
        """What to do so the platform comes back after a reboot, where the engine alone will not do it."""
        return self.facts.restart_advice or None

    def _wait_available(self, timeout: float) -> None:
        url = f"{local_url(self.settings)}/skaha/availability"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if (
                    httpx.get(url, timeout=2, verify=tls_verify(self.settings.layout, self.settings.tls)).status_code
                    == 200
                ):
                    return
            except httpx.HTTPError:
                pass
            service = self._container(naming.service_container(self.prefix))
            if service is not None:
                service.reload()
                if service.status in ("exited", "dead") or service.attrs["State"].get("Restarting"):
                    logs = service.logs(tail=15).decode(errors="replace").strip()
                    raise Unavailable(f"the emulator service failed to start:\n{logs}")
            time.sleep(0.2)
        raise Unavailable(f"the emulator did not answer at {url} within {timeout:.0f} s")

    def down(self, remove_sessions: bool = False) -> list[str]:
        with docker_errors():
            return self._down(remove_sessions)

    def _down(self, remove_sessions: bool) -> list[str]:
        removed = []
        roles = [labels.ROLE_SERVICE, labels.ROLE_GATEWAY, labels.ROLE_HELPER]
        if remove_sessions:
            roles.append(labels.ROLE_SESSION)
        if remove_sessions and self._swarm():  # sessions across a swarm: its services (their tasks go with them)
            for service in self.client.services.list(
                filters={"label": labels.selector(self.settings.instance, labels.ROLE_SESSION)}
            ):
                service.remove()
                removed.append(service.name)
            for config in self.client.configs.list(filters={"label": labels.selector(self.settings.instance)}):
                config.remove()  # the sessions' read-only files, which travelled as Swarm configs
        for role in roles:
            for container in self.client.containers.list(
                all=True, filters={"label": labels.selector(self.settings.instance, role)}
            ):
                container.remove(force=True, v=True)
                removed.append(container.name)
        forget_url(self.settings)
        if remove_sessions:
            Store.remove_files(self.settings.layout.state_db)
            shutil.rmtree(self.settings.layout.sessions_dir, ignore_errors=True)
            for network in self.client.networks.list(filters={"label": labels.selector(self.settings.instance)}):
                try:
                    network.remove()
                except docker.errors.APIError as exc:  # something else is still attached to it
                    raise EmulatorError(f"network {network.name} was kept: {exc.explanation or exc}") from exc
        return removed

    def _swarm(self) -> bool:
        """This engine manages a swarm (where an instance's sessions may be services, whatever its settings say
        now: `down --remove-sessions` removes those too)."""
        return bool((self.client.info().get("Swarm") or {}).get("ControlAvailable"))

    def status(self) -> PlatformStatus:
        with docker_errors():
            return self._status()

    def _status(self) -> PlatformStatus:
        def state(name: str) -> str:
            container = self._container(name)
            return "missing" if container is None else container.status

        selector = {"label": labels.selector(self.settings.instance, labels.ROLE_SESSION)}
        # As this instance runs them (a swarm manager may also run an instance whose sessions are containers)
        if self.settings.orchestrator == "swarm":
            sessions: list[Any] = self.client.services.list(filters=selector)
        else:
            sessions = self.client.containers.list(all=True, filters=selector)
        service = self._container(naming.service_container(self.prefix))
        return PlatformStatus(
            url=recorded_base_url(self.settings.layout) or self.settings.base_url,  # where `up` put it, if up
            service="missing" if service is None else service.status,
            gateway=state(naming.gateway_container(self.prefix)),
            sessions=len(sessions),
            engine=self.facts.description,
            facts=dataclasses.asdict(self.facts),
            faults=self.settings.faults if service is None else _runs_with_faults(service),
        )
