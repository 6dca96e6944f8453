"""Standalone mode: sessions on this machine's Docker engine with no platform running.

One kit per test run: a network (the user's network, as the platform names it) and a small gateway of
its own (the platform's gateway image, loaded with the platform's routing table for these profiles), so
prefixes, stripped paths and WebSockets are as on CANFAR. Each session is a testcontainers container
made from the platform's own spec (core.contract.build_spec, runtime.docker.create_kwargs), after the
platform's own preparation (the user's home and projects on /arc, passwd and group files, the desktop's
X cookie, the launch scripts), and is ready when the platform would call it ready (core.probe).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import secrets
import shutil
import sys
import tempfile
from collections.abc import Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import docker
import docker.errors
import psutil
from testcontainers.core.config import testcontainers_config
from testcontainers.core.container import DockerContainer
from testcontainers.core.network import Network
from testcontainers.core.wait_strategies import HttpWaitStrategy

from emulator import labels, naming
from emulator.core import apps, policy
from emulator.core.contract import build_spec, template_values
from emulator.core.models import GIB, Group, Session, User
from emulator.core.policy import GIVE_UP_FACTOR
from emulator.core.probe import probe_path
from emulator.core.provision import IdentityFiles, ensure_home, ensure_projects, install_session_files
from emulator.errors import EmulatorError, InvalidRequest
from emulator.gateway.base import GatewayTable
from emulator.gateway.caddy import LISTEN_PORT, OWN_ANSWER, full_config
from emulator.gateway.routes import routes_for
from emulator.host import validate
from emulator.host.images import GATEWAY_IMAGE
from emulator.profiles import Profile, load_profiles
from emulator.runtime.base import ContainerSpec
from emulator.runtime.docker import DockerRuntime, create_kwargs
from emulator.runtime.endpoint import client_from_environment
from emulator.session_types import SessionType
from emulator.settings import load_settings
from emulator.testkit import leftovers
from emulator.testkit.images import KitImages
from emulator.testkit.options import DEFAULT_LAUNCH, Launch
from emulator.testkit.ready import AnswersThroughGateway, ExitedAtStart, NeverReady
from emulator.testkit.session import ContractBroken, SkahaError, SkahaSession, refuse_what_canfar_ignores
from emulator.users.file import default_user_entry

T = TypeVar("T")
# No service runs beside a standalone kit: what a session asks of the API (the desktop's menu) fails at
# once (nothing listens on the discard port), and the session comes up regardless, as on CANFAR.
API_NOWHERE = "127.0.0.1:9"
GATEWAY_CONFIG_IN_GATEWAY = "/etc/caddy/testkit.json"
LAST_LINES = 20
# Faults on request (EMULATE_FAULT=... in a launch's env) are the platform's (core/faults.py), not the kit's.
NO_FAULTS = (
    "the test kit's standalone mode emulates no faults; run the tests against a platform started with "
    "EMULATE_FAULTS=true (attached mode: --skaha-url)"
)


@contextmanager
def _no_reaper() -> Iterator[None]:
    """testcontainers would pull its reaper image (ryuk) for our containers; the kit cleans up by its own
    labels instead, offline. Only our containers' starts skip it; the setting is put back after."""
    before = testcontainers_config._ryuk_disabled
    testcontainers_config.ryuk_disabled = True
    try:
        yield
    finally:
        testcontainers_config._ryuk_disabled = before


class _Fixed:
    """A wait strategy's target at a known address (the gateway, reached where the kit reaches it): all that
    HttpWaitStrategy asks of a container."""

    def __init__(self, port: int) -> None:
        self._port = port

    def get_container_host_ip(self) -> str:
        return "127.0.0.1"

    def get_exposed_port(self, port: int) -> int:
        return self._port


def _as_sent(value: int | None) -> str | None:
    """A launch option as skaha receives it (a form field's text)."""
    return None if value is None else str(value)


def _user() -> User:
    entry = default_user_entry()
    return User(entry.name, entry.uid, entry.gid, tuple(Group(g.name, g.gid) for g in entry.groups))


class StandaloneKit:
    """A test run's sessions, network and gateway. `start` before `launch`; `close` removes everything it
    made (but /arc), or, with `keep`, leaves it for a look (`emulate testkit clean` removes it later)."""

    def __init__(
        self,
        arc: Path,
        profiles_dir: Path | None = None,
        gateway_image: str = GATEWAY_IMAGE,
        client: docker.DockerClient | None = None,
        open_arc: bool = False,
    ) -> None:
        """`open_arc`: `arc` is the kit's own new folder, to be opened to the session user (as root, sessions
        run as another uid); a folder of yours is used as it is."""
        self._client = client or client_from_environment()
        self._gateway_image = gateway_image
        self._open_arc = open_arc
        self.owner = leftovers.owner()
        self.instance, self.state, self._labels = self._place()
        try:
            # This machine's EMULATE_* settings (the CA bundle builds trust, the pids limit...), with the run's
            # own name, folders and address on top.
            self.settings = load_settings(
                instance=self.instance,
                state_dir=self.state,
                config_dir=self.state / "config",
                arc_dir=arc,
                profiles_dir=profiles_dir,
                host="127.0.0.1",
                port=0,
                # The run's gateway serves its sessions by path alone: scripts, not browsers, open them.
                session_domain="none",
            )
            self.profiles = load_profiles(self.settings.profiles_dir)
        except BaseException:
            leftovers.remove_state(str(self.state))
            raise
        self.user = _user()
        # The platform's /context on this machine; the kit gives sessions no GPU (a launch cannot ask for one).
        self.context = policy.resource_context(psutil.cpu_count() or 1, psutil.virtual_memory().total / GIB, 0)
        self._threads = ThreadPoolExecutor(max_workers=1, thread_name_prefix="testkit")
        self._runtime = DockerRuntime(self._helper_labels, client=self._client)
        self._identity = IdentityFiles(self._runtime, self.settings)
        self.images = KitImages(self.settings, self._client, self._helper_labels)
        self._network: Network | None = None
        self.sessions: dict[str, SkahaSession] = {}
        self._records: dict[str, Session] = {}  # the sessions behind `sessions`, as the platform's store holds them
        self._home: StandaloneKit | None = None  # where reuse=True sessions live (reuse.ReuseHome), once asked

    def _place(self) -> tuple[str, Path, dict[str, str]]:
        """The run's instance name, its state folder and the labels on all it makes: its own, gone with it."""
        # Private to you: the session folders are named by session id, which is also a notebook's token.
        state = Path(tempfile.mkdtemp(prefix=leftovers.STATE_PREFIX))
        return f"testkit-{secrets.token_hex(4)}", state, {labels.KIT_OWNER: self.owner, labels.KIT_STATE: str(state)}

    @property
    def _helper_labels(self) -> dict[str, str]:
        return {**labels.platform_labels(self.instance, labels.ROLE_HELPER), **self._labels}

    # --- the run ------------------------------------------------------------------------------

    def start(self) -> StandaloneKit:
        """Clear what crashed runs left and prepare the run's folders; its network and gateway are made when a
        session first needs them (`base_url`), so a run whose sessions are all kept for reuse makes neither."""
        leftovers.sweep(self._client)
        try:
            self._prepare_folders()
        except BaseException:
            self.close()
            raise
        return self

    def _up(self) -> None:
        if self._network is not None:
            return
        try:
            self._make_network()
            self._start_gateway()
        except BaseException:
            self._network = None
            leftovers.sweep(self._client, only_owner=self.owner)  # what of them was made
            raise

    def _prepare_folders(self) -> None:
        arc = self.settings.layout.arc_path
        arc.mkdir(parents=True, exist_ok=True)
        if self._open_arc:  # sessions run as the user's uid: /arc itself must let them in (and list it)
            arc.chmod(0o755)
        install_session_files(self.settings, self.profiles.values())

    def _make_network(self) -> None:
        self._network = Network(
            docker_network_kw={
                "driver": "bridge",
                "labels": {**labels.platform_labels(self.instance, labels.ROLE_USER_NETWORK), **self._labels},
            }
        )
        self._network.name = naming.user_network(self.settings.prefix, self.user.name)
        self._network.create()

    def _gateway_config(self) -> tuple[Path, str]:
        """The gateway's routing table written for it, and a digest of it and its image (a kept gateway whose
        digest differs is made anew)."""
        found = self._ensure_image(self._gateway_image)
        routes = routes_for(self.profiles.values(), self.settings.prefix, "http://localhost")
        config = full_config(GatewayTable(API_NOWHERE, routes))
        config["admin"] = {"disabled": True}  # its table never changes while it runs
        text = json.dumps(config, sort_keys=True)
        config_file = self.state / "gateway.json"
        config_file.write_text(text)
        config_file.chmod(0o644)
        return config_file, hashlib.sha256(f"{found.id}\0{text}".encode()).hexdigest()

    def _start_gateway(self) -> None:
        config_file, digest = self._gateway_config()
        assert self._network is not None
        gateway = (
            DockerContainer(self._gateway_image)
            .with_name(naming.gateway_container(self.settings.prefix))
            .with_network(self._network)
            .with_command(["caddy", "run", "--config", GATEWAY_CONFIG_IN_GATEWAY])
            .with_env("GOMAXPROCS", str(self.settings.gateway_cpus))
            .with_volume_mapping(str(config_file), GATEWAY_CONFIG_IN_GATEWAY, "ro")
            .with_kwargs(
                labels={
                    **labels.platform_labels(self.instance, labels.ROLE_GATEWAY),
                    **self._labels,
                    labels.CONFIG_HASH: digest,
                }
            )
        )
        # Published on loopback only: its routes ask for no sign-in, so they are for this machine's tests alone.
        gateway.ports[f"{LISTEN_PORT}/tcp"] = ("127.0.0.1", None)  # type: ignore[assignment]
        with _no_reaper():
            gateway.start()
        port = int(gateway.get_docker_client().port(gateway.get_container_id(), LISTEN_PORT))
        gateway.get_docker_client().client.close()  # testcontainers gives each container a client of its own
        self._gateway_ready(port)

    def _gateway_ready(self, port: int) -> None:
        """Wait for the gateway published on `port`, and use it from now on."""
        self.settings = self.settings.model_copy(update={"port": port})
        # Anything under no route gets the gateway's own 404: it is up and routing.
        ready = HttpWaitStrategy.from_url(f"{self.settings.base_url}/testkit-ready").for_status_code(404)
        try:
            ready.with_startup_timeout(30).with_poll_interval(0.05).wait_until_ready(_Fixed(port))  # type: ignore[arg-type]
        except TimeoutError:
            raise SkahaError(
                f"the test run's gateway did not answer at {self.settings.base_url}: standalone sessions need the "
                "Docker engine on this machine (their ports are published on its loopback and /arc is a folder of "
                "this machine); run the tests beside the engine, or attach to a platform with --skaha-url"
            ) from None

    def _ensure_image(self, image: str) -> Any:
        """The local image; one of the emulator's own (the gateway, the desktop) is built from its recipe the
        first time, any other pulled."""
        try:
            return self._client.images.get(image)
        except docker.errors.ImageNotFound:
            pass
        from emulator.host import images

        own = {recipe.tag: name for name, recipe in images.recipes(self.settings).items() if name != "service"}
        if image in own:
            print(f"skaha-emulator: building {image} (its first use on this machine)", file=sys.stderr)
            images.build(self.settings, [own[image]], say=lambda line: None, client=self._client)
            return self._client.images.get(image)
        try:
            return self._client.images.pull(image)
        except docker.errors.APIError as exc:
            raise SkahaError(f"image {image} is not here and could not be pulled: {exc.explanation}") from None

    @property
    def base_url(self) -> str:
        """The gateway's URL (the run's is started on first use)."""
        self._up()
        return self.settings.base_url

    def close(self, keep: bool = False) -> None:
        """Remove every session, the gateway and the network (never /arc); with `keep`, leave them all. Sessions
        kept for reuse stay where they live (the reuse home), let go of."""
        try:
            if self._home is not None:
                self._home.close()
            if keep:
                (self.state / leftovers.KEPT).write_text("kept by --skaha-keep\n")
                return
            for session in list(self.sessions.values()):
                with suppress(Exception):  # whatever one does, the sweep below removes it
                    session.close()
            leftovers.sweep(self._client, only_owner=self.owner)
            leftovers.remove_state(str(self.state))
        finally:
            self._runtime.close()
            self._threads.shutdown(wait=False)

    # --- sessions ------------------------------------------------------------------------------

    def _sync(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run one of the platform's coroutines from a test (which may itself run inside an event loop)."""
        return self._threads.submit(asyncio.run, coroutine).result()

    def _check_image(self, image: str, session_type: str) -> Any:
        found = self._ensure_image(image)
        try:
            policy.check_image_types(found.labels or {}, image, session_type)
        except EmulatorError as exc:
            declared = labels.image_session_types(found.labels or {})
            raise ContractBroken(
                f"{exc.message}: {image} says it is for {', '.join(declared or [])} "
                f"(its {labels.IMAGE_SESSION_TYPES} label); CANFAR refuses to launch it as a {session_type}"
            ) from None
        return found

    def plan(self, image: str, session_type: str, options: Launch = DEFAULT_LAUNCH) -> policy.LaunchPlan:
        """This launch as the platform plans it: core.policy's rules, in SessionManager.launch's order, over the
        parameters the attached kit would send, then skaha's session limit over the sessions this kit runs.
        InvalidRequest, in the platform's words, wherever the platform would refuse (but the image's own
        checks, which `launch` makes next), and for a fault asked for (EMULATE_FAULT=... in `env`), which the
        kit never emulates, in its own (NO_FAULTS)."""
        checked = policy.check_launch(
            options.name, image, session_type, None, self.profiles, env=options.env_entries, faults_refused=NO_FAULTS
        )
        plan = policy.plan_launch(
            checked,
            policy.ResourceRequest(_as_sent(options.cores), _as_sent(options.ram)),
            options.env_entries,
            options.cmd,
            options.args_line,
            context=self.context,
            gpus=policy.GpuFacts(absent_because="the test kit gives sessions no GPU"),
            now=datetime.now(UTC),
            lifetime_seconds=self.settings.lifetime_seconds,
        )
        if plan.profile.counts_toward_limit:
            active = sum(1 for record in self._records.values() if self.profiles[record.type].counts_toward_limit)
            policy.check_session_limit(self.user.name, active, self.settings.max_sessions)
        return plan

    def launch(
        self, image: str, session_type: str, options: Launch = DEFAULT_LAUNCH, reuse: bool = False
    ) -> SkahaSession:
        """A session of `image` as `session_type`; with `reuse`, one kept across runs (reuse.ReuseHome)."""
        if reuse:
            return self.reuse_home().launch(image, session_type, options, reuse=True)
        plan, _ = self._checked(image, session_type, options)
        return self._start(plan.profile, plan.session(naming.new_session_id(), self.user.name), options.timeout)

    def _checked(self, image: str, session_type: str, options: Launch) -> tuple[policy.LaunchPlan, Any]:
        """The launch as planned, with the image (found, pulled or built) passing the platform's checks."""
        try:
            plan = self.plan(image, session_type, options)
        except InvalidRequest as exc:
            raise SkahaError(exc.message) from None
        refuse_what_canfar_ignores(plan.profile, options)
        return plan, self._check_image(plan.image, plan.type)

    def reuse_home(self) -> StandaloneKit:
        """The reuse home, started on first use: your own network and gateway where kept sessions live."""
        if self._home is None:
            from emulator.testkit.reuse import ReuseHome

            arc = None if self._open_arc else self.settings.layout.arc_path  # --skaha-arc: the sessions' /arc
            self._home = ReuseHome(
                arc, self.settings.profiles_dir, self._gateway_image, self._client, images=self.images
            ).start()
        return self._home

    def attach_app(self, desktop: SkahaSession, image: str) -> SkahaSession:
        parent = self._records.get(desktop.id)
        if parent is None:
            raise SkahaError(f"session {desktop.id} not found")
        profile = next((p for p in self.profiles.values() if p.attaches_to == parent.type), None)
        if profile is None:
            raise SkahaError(f"no desktop-app profile attaches to a {parent.type}")
        try:
            image = policy.validate_image(image)
            apps.check_image_name(image)
        except EmulatorError as exc:
            raise SkahaError(exc.message) from None
        self._check_image(image, profile.type)
        resources = policy.resolve_resources(
            policy.ResourceRequest(), self.context, profile.fixed_resources, False, headless=False
        )
        app = apps.new_app(profile, parent, self.user, image, resources, datetime.now(UTC))
        return self._start(profile, app, None)

    def _container(self, spec: ContainerSpec, extra_labels: dict[str, str]) -> DockerContainer:
        """The session's container as the platform would create it, in this engine's terms (Podman's tmpfs `U`,
        SELinux labels); rootless Podman's keep-id (a raw HostConfig field) cannot pass through testcontainers."""
        kwargs = create_kwargs(spec, self._runtime.facts(), selinux=self.settings.selinux)
        tmpfs = kwargs.pop("tmpfs")
        binds = kwargs.pop("volumes", [])
        for handled in ("image", "name", "environment", "command", "network", "detach"):
            kwargs.pop(handled)
        kwargs["labels"] = {**kwargs["labels"], **self._labels, **extra_labels}
        assert self._network is not None
        container = DockerContainer(spec.image, env=spec.environment, name=spec.name, network=self._network)
        container.with_kwargs(**kwargs)
        container.tmpfs.update(tmpfs)
        for bind in binds:  # "source:target:mode" (relabelled for SELinux)
            source, target, mode = bind.split(":")
            container.with_volume_mapping(source, target, mode)
        if spec.command is not None:
            container.with_command(spec.command)
        return container

    def _start(
        self, profile: Profile, session: Session, timeout: float | None, extra_labels: dict[str, str] | None = None
    ) -> SkahaSession:
        """The platform's bring-up, step for step, with testcontainers doing the run and the wait."""
        self._up()
        name = naming.session_container(self.settings.prefix, session.type, session.id)
        container: DockerContainer | None = None
        # As the platform: a session not ready after this many times its startup timeout fails.
        limit = timeout if timeout is not None else float(GIVE_UP_FACTOR * profile.startup_timeout_seconds)
        try:
            ensure_home(self.settings.layout.arc_path, self.user)
            ensure_projects(self.settings.layout.arc_path, self.user)
            self._sync(self._identity.write(session, self.user))
            if profile.x11 is not None:  # an app draws on its desktop's display
                self._identity.write_x11_cookie(self._records[session.parent_id] if session.parent_id else session)
            container = self._container(build_spec(profile, session, self.user, self.settings), extra_labels or {})
            if profile.interactive and profile.readiness is not None:
                values = template_values(profile, session, self.user, self.settings)
                url = f"{self.base_url}{probe_path(profile, values)}"
                container.waiting_for(AnswersThroughGateway(url, profile.readiness, OWN_ANSWER, limit))
            try:
                with _no_reaper():
                    container.start()
            except (ExitedAtStart, NeverReady) as exc:
                raise ContractBroken(self._explain(profile, session, container, exc, limit)) from None
            return self._session_handle(profile, session, self._client.containers.get(container.get_container_id()))
        except BaseException:
            self._discard(name, session)
            raise
        finally:
            if container is not None:  # testcontainers gives each container a client of its own
                container.get_docker_client().client.close()

    def _session_handle(
        self, profile: Profile, session: Session, container: Any, adopted: bool = False
    ) -> SkahaSession:
        """The test's handle on a started session (`adopted`: one an earlier run launched and kept)."""
        name = naming.session_container(self.settings.prefix, session.type, session.id)
        values = template_values(profile, session, self.user, self.settings)
        prefix = profile.render(profile.path_prefix, values) if profile.path_prefix else None
        connect = profile.render(profile.connect_url, values) if profile.connect_url != "not-applicable" else None
        handle = SkahaSession(
            session_id=session.app_id or session.id,
            session_type=session.type,
            image=session.image,
            container=container,
            url=f"{self.base_url}{prefix}" if prefix else None,
            connect_url=connect,
            http_params={"token": session.id} if session.type == SessionType.NOTEBOOK else None,
            on_desktop_app=self.attach_app if profile.x11 == "server" else None,
            log_rules=lambda: self.images.log_rules(session.image),
            **self._ending(name, session, adopted),
        )
        self.sessions[session.id] = handle
        self._records[session.id] = session
        return handle

    def _ending(self, name: str, session: Session, adopted: bool) -> dict[str, Any]:
        """How a session of this kit ends: deleted with its test (a reuse home's are kept; see reuse.py)."""
        return {"on_close": lambda closed: self._discard(name, session)}

    def _discard(self, container_name: str, session: Session) -> None:
        """A session's container and files go, as the platform removes them when a session ends."""
        with suppress(docker.errors.NotFound):
            self._client.api.remove_container(container_name, force=True, v=True)
        shutil.rmtree(self.settings.layout.session_files(session.id), ignore_errors=True)
        self.sessions.pop(session.id, None)
        self._records.pop(session.id, None)

    def _explain(
        self, profile: Profile, session: Session, container: DockerContainer, failure: Exception, limit: float
    ) -> str:
        """validate.explain_start over what the kit knows of the failed start: how it failed, the static checks
        `emulate validate` makes, and the app's last output."""
        try:
            findings = validate.static_checks(self._client, session.image, profile, self._helper_labels)
        except EmulatorError:
            findings = []
        try:
            output = container.get_wrapped_container().logs(tail=LAST_LINES).decode(errors="replace").rstrip()
        except docker.errors.APIError:
            output = ""
        values = template_values(profile, session, self.user, self.settings)
        return validate.explain_start(
            session.image,
            profile,
            findings,
            exited=str(failure) if isinstance(failure, ExitedAtStart) else None,
            where=profile.render(profile.path_prefix or "/", values),
            waited=limit,
            output=output,
        )
