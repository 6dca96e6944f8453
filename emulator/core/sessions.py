"""SessionManager: the verbs every face calls.

Public face (what the API calls, at any time): `launch`, `attach_app`, `sessions`, `apps`, `get`,
`get_app`, `logs`, `events`, `renew`, `delete`, `delete_app`, `connect_url`, `usage`, `catalogue`,
`stats`, and the read-only `context` and `repositories`. Housekeeping (housekeeping.py) also calls
`now`, `known_users`, `start`, `terminate`, `in_flight`, `terminating`, `fail_vanished`, `ended` and `event`; the
service calls `stop` once, at shutdown. Everything else is private.

Launch validates and admits synchronously (so bad input leaves nothing behind) and answers
with the id at once; bringing the container up and probing its readiness happen in a
background task. A per-session lock orders bring-up against delete, so a delete during a
launch can never leave a container behind.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from emulator import labels, naming
from emulator.core import apps, policy
from emulator.core.addresses import SessionAddresses
from emulator.core.callback import CallbackTokens
from emulator.core.contract import TOP_LEVEL, build_spec, template_values
from emulator.core.disk import DiskWatch, disk_full_words, is_disk_full
from emulator.core.identity import UsersSource
from emulator.core.models import (
    GIB,
    CatalogueEntry,
    Event,
    HostCapacity,
    Limits,
    PlatformStats,
    Session,
    Status,
    User,
)
from emulator.core.networks import UserNetworks
from emulator.core.probe import GatewayProbes, probe_path, wait_until_ready
from emulator.core.provision import IdentityFiles, ensure_home, ensure_projects
from emulator.core.pulls import ImagePulls, PullKey
from emulator.core.quotas import PASSES_PER_MEASURE, HomeQuotas, HomeUse
from emulator.core.registries import RegistryPolicy
from emulator.core.store import Store
from emulator.core.usage import UsageSampler
from emulator.errors import (
    EmulatorError,
    EngineError,
    Forbidden,
    ImagePullError,
    InvalidRequest,
    NotFound,
    Unavailable,
)
from emulator.profiles import Profile
from emulator.runtime.base import ContainerState, ImageInfo, NodeInfo, RegistryCredentials, Runtime, Usage
from emulator.runtime.engine import LimitSupport
from emulator.session_types import SessionType
from emulator.settings import Settings

log = logging.getLogger("emulator.sessions")

ENGINE_FAILURE = "The container engine could not start the session; the emulator's log says why"
# skaha's words when an image it does not hold is launched without credentials (v0 SessionAction).
CREDENTIALS_NEEDED = (
    "No authentication provided for unknown or private image.  "
    "Use x-skaha-registry-auth request header with base64Encode(username:secret)."
)
MB = 1000 * 1000
PLACEMENT_POLL = 0.25  # seconds between looks at a session an orchestrator has not placed yet
GIVE_UP_FACTOR = 2  # a session not ready after this many times its profile's startup_timeout_seconds fails


def utcnow() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


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
    # skaha's x-skaha-registry-auth header, for this launch's pull only (never in a repr, so never in a log)
    registry_auth: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class AppRequest:
    image: str | None
    cores: str | None = None
    ram: str | None = None
    registry_auth: str | None = field(default=None, repr=False)


STOPPED_BY_PLATFORM = -1  # the exit code recorded for a session the platform stopped


class SessionManager:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        runtime: Runtime,
        profiles: dict[str, Profile],
        users: UsersSource,
        callbacks: CallbackTokens,
        usage: UsageSampler,
        networks: UserNetworks,
        context: dict[str, Any],
        capacity: HostCapacity,
        probes: GatewayProbes,
        gpu_devices: list[str] | None = None,
        clock: Callable[[], datetime] = utcnow,
        gpu_note: str = "no NVIDIA GPU on this machine",
    ) -> None:
        self._settings = settings
        self._store = store
        self._runtime = runtime
        self._profiles = profiles
        self._users = users
        self._callbacks = callbacks
        self._context = context
        self._capacity = capacity
        self._gpu_devices = gpu_devices or []
        self._gpu_note = gpu_note  # why there are none, when there are none
        self._clock = clock
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._terminations: dict[str, asyncio.Task[None]] = {}
        self._measuring: dict[str, asyncio.Task[HomeUse]] = {}  # quota measurements running, per user
        self._locks: dict[str, asyncio.Lock] = {}
        self._identity = IdentityFiles(runtime, settings)
        self._usage = usage
        self._networks = networks
        self._probes = probes
        self._pulls = ImagePulls(runtime)
        self._disk = DiskWatch(
            {"/arc": settings.arc_path, "the platform's state": settings.state_path}, settings.min_free_gb
        )
        self._registries = RegistryPolicy(settings.registries, public_only=settings.auth_required)
        self.quotas = HomeQuotas(
            self._home,
            settings.user_home_quota_gb,
            shown_as=lambda name: f"{TOP_LEVEL}/home/{name}",
            measure_every=settings.loop_interval * PASSES_PER_MEASURE,
        )
        self.addresses = SessionAddresses(store, runtime, settings.prefix)  # what the gateway's name server answers
        # Sessions whose bring-up pulls first, with the launch's credentials (in memory only, until the pull),
        # and the pull each session waits for now (its progress is that session's, no one else's).
        self._pull_requests: dict[str, RegistryCredentials | None] = {}
        self._pulling: dict[str, PullKey] = {}
        # What admission allows does not change while the service runs.
        self._admission = Limits(
            max_jobs=settings.max_jobs,
            max_apps_per_desktop=settings.max_apps_per_desktop,
            fixed_memory_gb=max(0.0, capacity.memory_gb - settings.host_headroom_gb),
            fixed_cores=float(capacity.cores),
            headroom_gb=settings.host_headroom_gb,
            user_memory_gb=settings.max_user_memory_gb,
            host_checked=settings.orchestrator == "engine",
        )

    # --- read-only facts ------------------------------------------------------------------

    @property
    def context(self) -> dict[str, Any]:
        """skaha's /context: the cores, RAM and GPU options a launch may ask for."""
        return self._context

    @property
    def repositories(self) -> list[str]:
        return self._settings.repositories

    @property
    def max_sessions(self) -> int:
        return self._settings.max_sessions

    @property
    def arc_root(self) -> Path:
        return self._settings.arc_path

    async def _check_space(self, user: User) -> None:
        """Room on the server's disks, and in the user's share of them (DiskFull, 507, in words)."""
        self._disk.check()
        if self.quotas.enabled:
            self.quotas.check_launch(await self.home_use(user.name), user.name)

    async def written_by_user(self) -> dict[str, int]:
        """What each user's session containers hold in their own layers (the engine measures it: call seldom)."""
        sizes = await self._runtime.written(labels.selector(self._settings.instance, labels.ROLE_SESSION))
        per_user: dict[str, int] = {}
        for session in self._store.sessions():
            written = sizes.get(self.container_name(session), 0)
            per_user[session.user] = per_user.get(session.user, 0) + written
        return per_user

    async def home_use(self, user: str, written: dict[str, int] | None = None) -> HomeUse:
        """The user's figure against their quota: the recent one, or measured now (`written`: the layers' sizes,
        when the caller has them already). Callers asking while a measurement runs share it."""
        known = self.quotas.known(user)
        if known is not None:
            return known
        task = self._measuring.get(user)
        if task is None:
            task = self._measuring[user] = asyncio.create_task(self._measure(user, written))
            task.add_done_callback(lambda _: self._measuring.pop(user, None))
        return await asyncio.shield(task)

    async def _measure(self, user: str, written: dict[str, int] | None) -> HomeUse:
        if written is None:
            written = await self.written_by_user()
        return await asyncio.to_thread(self.quotas.measure, user, written.get(user, 0))

    def home_of(self, user: User) -> Path:
        """The user's home on the host (their /arc/home/<name>)."""
        return self._home(user.name)

    def _home(self, name: str) -> Path:
        return self._settings.arc_path / "home" / name

    def now(self) -> datetime:
        return self._clock()

    def user_removed(self, name: str) -> bool:
        """The user left the users file (`emulate users rm`) without their sessions being kept."""
        return self._users.current().removed(name)

    def known_users(self) -> set[str]:
        """Everyone in the users file, and anyone who still has a session."""
        return {u.name for u in self._users.current().users} | {s.user for s in self._store.sessions()}

    def container_name(self, session: Session) -> str:
        return naming.session_container(self._settings.prefix, session.type, session.id)

    def event(self, session_id: str, reason: str, message: str, warning: bool = False) -> None:
        self._store.record_event(session_id, "Warning" if warning else "Normal", reason, message, self._clock())

    def connect_url(self, session: Session) -> str:
        profile = self._profiles.get(session.type)
        user = self._users.current().get(session.user)
        if profile is None or user is None or profile.connect_url == "not-applicable":
            return "not-applicable"
        return profile.render(profile.connect_url, template_values(profile, session, user, self._settings))

    def usage(self, session: Session) -> Usage | None:
        return self._usage.of(session)

    @property
    def limits(self) -> LimitSupport:
        """Which of the contract's limits the engine enforces on sessions (the runtime asked it once), so the
        figures shown beside them never promise what the machine does not keep."""
        return self._runtime.facts().limits

    @property
    def ram_counts_cache(self) -> bool:
        """The engine's figure of RAM in use includes the page cache (it gives no breakdown to subtract)."""
        return self._runtime.facts().memory_counts_cache

    # --- launch ---------------------------------------------------------------------------

    async def launch(self, user: User, request: LaunchRequest) -> str:
        image_ref = policy.validate_image(request.image)
        name = policy.validate_name(request.name)
        session_type = policy.validate_type(request.type)
        credentials = policy.registry_credentials(request.registry_auth)
        profile = self._profiles.get(session_type)
        if profile is not None and profile.attaches_to is not None:
            raise InvalidRequest(
                f"a {session_type} is attached to a {profile.attaches_to}: POST /session/<{profile.attaches_to} id>/app"
            )
        await self._check_space(user)
        must_pull = await self._check_image(image_ref, session_type, credentials)
        if profile is None:
            raise InvalidRequest(
                f"session type '{session_type}' is not available in this emulator yet (no profiles/{session_type}.yaml)"
            )
        placed_by_swarm = self.distributed and self._capacity.gpus > 0
        if not self._gpu_devices and not placed_by_swarm and request.gpus not in (None, "", "0"):
            # skaha's words, and why: a laptop without a GPU, or an engine that cannot hand one over.
            raise InvalidRequest(f"Invalid value for 'gpus': {request.gpus} ({self._gpu_note})")
        resources = policy.resolve_resources(
            policy.ResourceRequest(request.cores, request.ram, request.gpus),
            self._context,
            profile.fixed_resources,
            profile.gpus_allowed,
            headless=profile.batch,
        )
        # No await from here to admit(): GPU choice and admission happen in one step of the loop.
        # Across a swarm, Swarm gives the session GPUs of the machine it places it on (generic resources).
        in_use = self._store.gpu_devices_in_use()
        devices = [] if placed_by_swarm else policy.pick_gpus(self._gpu_devices, in_use, resources.gpus)
        now = self._clock()
        session = Session(
            id=naming.new_session_id(),
            user=user.name,
            type=session_type,
            name=name,
            image=image_ref,
            status=Status.PENDING,
            resources=resources,
            start_time=now,
            expiry_time=policy.expiry(now, self._settings.lifetime_seconds(profile.batch)),
            env=policy.parse_env(request.env),
            cmd=request.cmd,
            args=request.args,
            gpu_devices=devices,
        )
        while not self._store.admit(session, self._settings.max_sessions, self._admission):
            session.id = naming.new_session_id()
        if must_pull:
            self._pull_requests[session.id] = credentials
        self.event(session.id, "Scheduled", f"Assigned {session.type} session {session.id} to this machine")
        self.start(session.id)
        return session.id

    async def attach_app(self, user: User, desktop_id: str, request: AppRequest) -> str:
        """Attach a desktop-app to the caller's desktop; answers the 3-character app id."""
        desktop = self._store.get(desktop_id)
        targets = {p.attaches_to for p in self._profiles.values() if p.attaches_to} or {SessionType.DESKTOP}
        if desktop is None or desktop.user != user.name or desktop.type not in targets or not desktop.status.live:
            raise NotFound(f"session {desktop_id} not found")
        image_ref = policy.validate_image(request.image)
        credentials = policy.registry_credentials(request.registry_auth)
        profile = next((p for p in self._profiles.values() if p.attaches_to == desktop.type), None)
        if profile is None:
            raise InvalidRequest("desktop-app sessions are not available (no profiles/desktop-app.yaml)")
        await self._check_space(user)
        must_pull = await self._check_image(image_ref, profile.type, credentials)
        resources = policy.resolve_resources(
            policy.ResourceRequest(request.cores, request.ram),
            self._context,
            profile.fixed_resources,
            False,
            headless=False,
        )
        apps.check_image_name(image_ref)
        app = apps.new_app(profile, desktop, user, image_ref, resources, self._clock())
        while not self._store.admit(app, self._settings.max_sessions, self._admission):
            apps.redraw_id(app)
        desktop = self._store.get(desktop_id)
        if desktop is None or not desktop.status.live:  # deleted meanwhile
            self._store.remove(app.id)
            raise NotFound(f"session {desktop_id} not found")
        if must_pull:
            self._pull_requests[app.id] = credentials
        self.event(app.id, "Scheduled", apps.scheduled_message(app))
        self.start(app.id)
        return app.app_id or ""

    async def _check_image(self, reference: str, session_type: str, credentials: RegistryCredentials | None) -> bool:
        """Check the image a launch names before admitting it; True when the bring-up must pull it first.

        A local image is checked against the type now. One that arrived with somebody's registry
        credentials is pulled again with the caller's (the registry decides; the layers are local,
        so that is a manifest check): holding an image never lets a stranger past its registry.
        """
        image = await self._runtime.image(reference)
        private = self._store.is_private(reference, image.id if image else None)
        if image is not None and not private:
            policy.check_image_types(image.labels, reference, session_type)
            return False
        if private and credentials is None:
            raise InvalidRequest(CREDENTIALS_NEEDED)
        await self._registries.check(reference)  # it will be pulled: from a registry this server may reach?
        if image is not None:
            return True
        if self._settings.image_pull == "never":
            raise InvalidRequest(
                f"image '{reference}' is not in the local Docker engine and this emulator does not pull "
                "(EMULATE_IMAGE_PULL=never); build it (emulate images build), load a bundle "
                "(emulate bundle load) or pull it (docker pull) first"
            )
        return True

    async def _ensure_image(self, session: Session) -> bool:
        """The session's image, pulled first when its launch asked (or it vanished since); False when
        that failed, with the kubelet's events (Pulling, then Pulled or Failed and ErrImagePull)."""
        asked = session.id in self._pull_requests
        credentials = self._pull_requests.pop(session.id, None)
        if not asked:  # resumed after a restart: the launch's credentials (if any) are gone
            image = await self._runtime.image(session.image)
            if self._store.is_private(session.image, image.id if image else None):
                await self._fail(
                    session.id,
                    "The registry credentials of this launch were lost when the emulator restarted; launch it again",
                )
                return False
            if image is not None:
                return True
            if self._settings.image_pull == "never":
                await self._fail(session.id, f"image '{session.image}' is no longer in the local Docker engine")
                return False
        self.event(session.id, "Pulling", f'Pulling image "{session.image}"')
        started = time.monotonic()
        try:
            pulled = await self._anonymously(session) if credentials is not None else None
            if pulled is not None:
                credentials = None  # anyone may pull it: the credentials make it no one's private image
            else:
                if credentials is not None:  # marked before the pull: no launch without credentials slips in
                    self._store.mark_private(session.image)
                self._pulling[session.id] = (session.image, credentials)
                pulled = await self._pulls.pull(session.image, credentials)
        except ImagePullError as exc:
            if self._still_pending(session.id):
                self.event(session.id, "Failed", f'Failed to pull image "{session.image}": {exc.message}', warning=True)
                await self._fail(session.id, "Error: ErrImagePull")
            return False
        finally:
            self._pulling.pop(session.id, None)
        if credentials is not None:
            self._store.mark_private(session.image, pulled.id)
        if not self._still_pending(session.id):
            return False  # deleted while it pulled
        seconds = time.monotonic() - started
        self.event(
            session.id,
            "Pulled",
            f'Successfully pulled image "{session.image}" in {seconds:.1f}s, {pulled.size / MB:.0f} MB',
        )
        try:
            policy.check_image_types(pulled.labels, session.image, session.type)
        except InvalidRequest as exc:
            await self._fail(session.id, exc.message)
            return False
        return True

    async def _anonymously(self, session: Session) -> ImageInfo | None:
        """The image pulled without credentials, or None when the registry refuses that. An image becomes
        private only then: someone who sends credentials for a public image must not make it private for
        everyone else."""
        self._pulling[session.id] = (session.image, None)
        try:
            return await self._pulls.pull(session.image, None)
        except ImagePullError:
            return None

    def pull_progress(self, user: User, session_id: str) -> dict[str, object] | None:
        """How far the pull a Pending session waits for has come (an emulator extension: view=pull)."""
        self.get(user, session_id)  # the caller's own session, or 404
        pulling = self._pulling.get(session_id)
        return self._pulls.progress(pulling) if pulling else None

    # --- bring-up -------------------------------------------------------------------------

    def in_flight(self, session_id: str) -> bool:
        task = self._tasks.get(session_id)
        return task is not None and not task.done()

    def start(self, session_id: str) -> None:
        """Bring a Pending session up in the background (also used to resume after a restart)."""
        if self.in_flight(session_id):
            return
        task = asyncio.create_task(self._bring_up(session_id), name=f"bring-up-{session_id}")
        self._tasks[session_id] = task
        task.add_done_callback(lambda done: self._forget(session_id, done))

    def _forget(self, session_id: str, task: asyncio.Task[None]) -> None:
        if self._tasks.get(session_id) is task:
            del self._tasks[session_id]
        if not task.cancelled() and task.exception() is not None:
            log.error("bring-up of %s failed", session_id, exc_info=task.exception())

    def _lock(self, session_id: str) -> asyncio.Lock:
        return self._locks.setdefault(session_id, asyncio.Lock())

    # Over the complexity limit until the bring-up leaves the manager (branch split-manager splits it).
    async def _bring_up(self, session_id: str) -> None:  # noqa: C901
        """Pull the image if need be, create and start the container, then probe readiness; any failure
        fails the session. The pull happens outside the session's lock, so a delete never waits for it."""
        try:
            pending = self._store.get(session_id)
            if pending is None or pending.status is not Status.PENDING:
                return
            # The user's home, projects and network are made while the image is pulled (all idempotent).
            prepared = asyncio.create_task(self._prepare_user(pending.user))
            try:
                if not await self._ensure_image(pending):
                    return
            finally:
                await prepared
            async with self._lock(session_id):
                session = self._store.get(session_id)
                if session is None or session.status is not Status.PENDING:
                    return
                profile = self._profiles.get(session.type)
                if profile is None:
                    raise EmulatorError(f"no profile for session type '{session.type}' any more")
                user = self._users.current().get(session.user)
                if user is None:
                    raise EmulatorError(f"user {session.user} is no longer in the users file")
                await self._identity.write(session, user)
                display = self._store.get(session.parent_id) if session.parent_id else session
                if profile.x11 is not None and display is not None:
                    # The display's cookie, made at the desktop's start (or now, for a desktop from before cookies).
                    self._identity.write_x11_cookie(display)
                spec = build_spec(profile, session, user, self._settings, self._callbacks.token(session.id))
                state = await self._runtime.run(spec)
            # Outside the lock: a delete never waits for an orchestrator to find the session a machine.
            placed = await self._placed(session_id, spec.name, state)
            if placed is None:
                return
            state = placed
            self.addresses.remember(spec.name, state.address)
            never_ran = state.state == "dead" and state.reason is not None  # a machine could not start it
            if not never_ran:  # (one that ran and ended at once, a quick job, did start)
                where = f" on {state.node}" if state.node else ""
                self.event(session_id, "Started", f"Started container {spec.name}{where}")
            if never_ran:
                return  # housekeeping fails it with the reason
            if profile.readiness is None or not profile.interactive:
                if self._store.mark_running(session_id):
                    self.event(session_id, "Running", "Container is running")
                return
            if state.address is None:
                return  # it exited or is restarting already; housekeeping reports what happened
            await self._probe(session, profile, user)
        except asyncio.CancelledError:
            raise
        except (EngineError, Unavailable) as exc:  # the engine's words go to the log, not to the user
            log.error("bring-up of %s failed: %s", session_id, exc.message)
            full = is_disk_full(exc)
            await self._fail(session_id, disk_full_words("the engine's disk") if full else ENGINE_FAILURE)
        except EmulatorError as exc:
            await self._fail(session_id, exc.message)
        except Exception as exc:  # a failure we did not foresee: the session fails, loudly in the log
            log.exception("bring-up of %s failed", session_id)
            await self._fail(session_id, disk_full_words("/arc or the state") if is_disk_full(exc) else ENGINE_FAILURE)

    async def _placed(self, session_id: str, name: str, state: ContainerState) -> ContainerState | None:
        """Wait while an orchestrator has not started the session (a single engine never makes it wait), telling
        its events why, as Kubernetes does (FailedScheduling; then the machine it was given). A session no
        machine can take waits until one can; one a machine does not start within EMULATE_PULL_STALL_SECONDS
        (an image it cannot pull) fails. None: no longer wanted."""
        told: tuple[str | None, str | None] = (None, None)
        loop = asyncio.get_running_loop()
        given_at = None
        while state.state == "pending":
            if (state.reason, state.node) != told:
                if state.reason:
                    self.event(session_id, "FailedScheduling", state.reason, warning=True)
                elif state.node:
                    self.event(session_id, "Assigned", f"Assigned to {state.node}; starting it there")
                told = (state.reason, state.node)
            if state.node and given_at is None:
                given_at = loop.time()
            if given_at is not None and loop.time() - given_at > self._settings.pull_stall_seconds:
                await self._fail(
                    session_id,
                    f"{state.node} did not start it within {self._settings.pull_stall_seconds:g} s "
                    "(can that machine pull the image?)",
                )
                return None
            await asyncio.sleep(PLACEMENT_POLL)
            if not self._still_pending(session_id):
                return None
            try:
                found = await self._runtime.state(name)
            except EmulatorError as exc:  # a passing engine error must not end a session that waited for hours
                log.warning("could not read the state of %s: %s", name, exc.message)
                continue
            if found is None:
                return None
            state = found
        return state

    async def _prepare_user(self, name: str) -> None:
        """What every session of a user needs: their home, their projects and their network."""
        user = self._users.current().get(name)
        if user is None:
            raise EmulatorError(f"user {name} is no longer in the users file")
        ensure_home(self._settings.arc_path, user, self._runtime.facts().arc_owner(user.uid, user.gid))
        ensure_projects(self._settings.arc_path, user)
        await self._networks.ensure(user.name)

    async def _probe(self, session: Session, profile: Profile, user: User) -> None:
        assert profile.readiness is not None and profile.path_prefix is not None
        path = probe_path(profile, template_values(profile, session, user, self._settings))
        ready = await wait_until_ready(
            url=f"{self._probes.base_url.rstrip('/')}{path}",
            probe=profile.readiness,
            answered_by_gateway=self._probes.answered_by_gateway,
            headers=self._probes.headers_for(session.id),
            interval=self._settings.probe_interval,
            still_wanted=lambda: self._still_pending(session.id),
            on_slow=lambda: self.event(
                session.id,
                "Unhealthy",
                f"Not ready after {profile.startup_timeout_seconds} s; still probing",
                warning=True,
            ),
            slow_after=profile.startup_timeout_seconds,
            give_up_after=GIVE_UP_FACTOR * profile.startup_timeout_seconds,
        )
        if ready and self._store.mark_running(session.id):
            self.event(session.id, "Ready", f"{session.type} answers on port {profile.port}")
        elif not ready and self._still_pending(session.id):  # never an endless Pending
            waited = GIVE_UP_FACTOR * profile.startup_timeout_seconds
            output = await self._last_output(session)
            await self._fail(
                session.id,
                f"Never ready: nothing answered on port {profile.port} in {waited} s "
                f"(startup_timeout_seconds x {GIVE_UP_FACTOR}).{output}",
            )

    async def _last_output(self, session: Session, lines: int = 10) -> str:
        """The container's last lines of output, for a reason that ends a start (empty when none)."""
        try:
            text = await self._runtime.logs(self.container_name(session), lines, 4096)
        except EmulatorError:
            return ""
        return f" Its last output:\n{text.rstrip()}" if text.strip() else " It wrote no output."

    def _still_pending(self, session_id: str) -> bool:
        session = self._store.get(session_id)
        return session is not None and session.status is Status.PENDING

    async def _fail(self, session_id: str, reason: str) -> None:
        session = self._store.get(session_id)
        if session is None or session.status is not Status.PENDING:
            return  # deleted meanwhile
        try:
            await self._runtime.remove(self.container_name(session))
        except Exception:  # the row still says Failed; housekeeping removes the container with it later
            log.exception("could not remove the container of failed session %s", session_id)
        if not self._store.fail_pending(session_id, self._clock()):
            return  # it ended (or a delete began) while its container was removed: that end stands
        self.event(session_id, "Failed", reason, warning=True)
        log.warning("session %s of %s failed to start: %s", session_id, session.user, reason.splitlines()[0])

    async def ended(self, session: Session, exit_code: int | None) -> None:
        """The container exited: Succeeded on 0, else Failed, OOMKilled when the kernel ended it for
        memory (housekeeping saw it; the container and its logs stay until the session is removed)."""
        state = await self._runtime.state(self.container_name(session))
        code = state.exit_code if state is not None and state.exit_code is not None else exit_code
        code = code if code is not None else -1
        status = Status.SUCCEEDED if code == 0 else Status.FAILED
        profile = self._profiles.get(session.type)
        starting = session.status is Status.PENDING and profile is not None and not profile.batch
        if not self._store.finish(session.id, status, self._clock(), code):
            return  # deleted (Terminating) meanwhile: the delete stands
        if state is not None and state.reason and code != 0:  # e.g. the machine it ran on was lost
            self.event(session.id, "Failed", f"The session ended: {state.reason}", warning=True)
            return
        if state is not None and state.oom_killed and code != 0:
            limit = f"{session.resources.ram_limit_gb:g} GB"
            self.event(
                session.id,
                "OOMKilled",
                f"The kernel's OOM killer ended the container: it used its whole {limit} memory limit "
                f"(exit code {code}); ask for more RAM",
                warning=True,
            )
            return
        if code == 137 and self._oom_unreported():  # SIGKILL under a limit, on an engine that never says OOM
            self.event(
                session.id,
                "Failed",
                "Container exited with code 137 under a memory limit: probably out of memory; this engine does not say",
                warning=True,
            )
            return
        if starting and code != 0:  # an interactive session that ended before it was ever ready
            output = await self._last_output(session)
            self.event(
                session.id, "Failed", f"Container exited with code {code} during start-up.{output}", warning=True
            )
            return
        self.event(
            session.id,
            "Completed" if code == 0 else "Failed",
            f"Container exited with code {code}",
            warning=code != 0,
        )

    def _oom_unreported(self) -> bool:
        """The engine enforces memory limits but never reports an OOM kill (EngineFacts.reports_oom)."""
        facts = self._runtime.facts()
        return facts.limits.memory and not facts.reports_oom

    async def fail_vanished(self, session: Session) -> None:
        """A Running session whose container is gone (checked once more, by name) fails."""
        if await self._runtime.state(self.container_name(session)) is None:
            self._store.set_status(session.id, Status.FAILED, ended_at=self._clock())
            self.event(session.id, "Failed", "The session's container disappeared", warning=True)

    async def stop(self) -> None:
        """Cancel every background task (service shutdown)."""
        tasks = [*self._tasks.values(), *self._terminations.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # --- queries --------------------------------------------------------------------------

    def sessions(
        self,
        user: User | None,
        type_filter: str | None = None,
        status_filter: str | None = None,
        status_word: Callable[[Status], str] = lambda status: status.value,
    ) -> list[Session]:
        """Sessions (of one user, or all), filtered case-insensitively by type and by the status word shown."""
        sessions = self._store.sessions(user.name if user else None)
        if type_filter:
            sessions = [s for s in sessions if s.type.lower() == type_filter.lower()]
        if status_filter:
            sessions = [s for s in sessions if status_word(s.status).lower() == status_filter.lower()]
        return sessions

    def get(self, user: User, session_id: str) -> Session:
        """The caller's session (never a desktop-app row); another user's is as missing as none (skaha)."""
        session = self._store.get(session_id)
        if session is None or session.user != user.name or session.parent_id is not None:
            raise NotFound(f"session {session_id} not found")
        return session

    def apps(self, user: User, status_filter: str | None, status_word: Callable[[Status], str]) -> list[Session]:
        """All of the caller's desktop-apps (skaha lists them whatever desktop is named)."""
        found = self.sessions(user, None, status_filter, status_word)
        return [s for s in found if s.parent_id is not None]

    def get_app(self, user: User, desktop_id: str, app_id: str) -> Session:
        session = self._store.get(naming.app_row_id(desktop_id, app_id))
        if session is None or session.user != user.name:
            raise NotFound(f"desktop app with session {desktop_id} and app ID {app_id} was not found")
        return session

    async def logs(self, user: User, session_id: str) -> str:
        """The session's newest output (bounded, as `kubectl logs --tail`); a desktop's includes its apps'
        (skaha selects by session label)."""
        session = self.get(user, session_id)
        tail, limit = self._settings.log_tail_lines, self._settings.log_max_bytes
        parts = [
            await self._runtime.logs(self.container_name(s), tail, limit)
            for s in [session, *self._store.apps_of(session.id)]
        ]
        return "".join(parts)

    def events(self, user: User, session_id: str) -> list[Event]:
        return self._store.events(self.get(user, session_id).id)

    async def catalogue(self, session_type: str | None) -> list[CatalogueEntry]:
        """Local images labelled with session types (of one type, if given), by name."""
        entries: list[CatalogueEntry] = []
        private = self._store.private_image_ids()
        for image in await self._runtime.images():
            types = labels.image_session_types(image.labels)
            if types is None or not image.tags or image.id in private:
                continue  # like Harbor: unlabelled artifacts are invisible, and so are private ones
            if session_type is None or session_type in types:
                description = image.labels.get(labels.IMAGE_DESCRIPTION, "")
                # Every name an image goes by is launchable (a CANFAR name given with `docker tag` too).
                entries.extend(CatalogueEntry(tag, types, image.digest, description) for tag in image.tags)
        return sorted(entries, key=lambda entry: entry.id)

    def stats(self) -> PlatformStats:
        running = [s for s in self._store.sessions() if s.status is Status.RUNNING]
        by_kind = {"interactive": 0, "apps": 0, "batch": 0}
        for session in running:
            profile = self._profiles.get(session.type)
            kind = "batch" if profile and profile.batch else "apps" if session.parent_id else "interactive"
            by_kind[kind] += 1
        return PlatformStats(
            interactive=by_kind["interactive"],
            desktop_apps=by_kind["apps"],
            headless=by_kind["batch"],
            requested_cores=sum(s.resources.cores_request for s in running),
            requested_ram_gb=sum(s.resources.ram_request_gb for s in running),
            capacity=self._capacity,
            requested_gpus=sum(s.resources.gpus for s in running),
            gpus=len(self._gpu_devices) or self._capacity.gpus,
        )

    @property
    def distributed(self) -> bool:
        """Sessions are placed across several machines (a swarm), not run on this one."""
        return self._settings.orchestrator != "engine"

    async def nodes(self) -> list[NodeInfo]:
        """The machines sessions run on, with what each holds: a swarm's nodes as Swarm reserves them, or this
        one machine with what its running sessions asked for."""
        found = await self._runtime.nodes()
        if self.distributed or len(found) != 1:
            return found
        stats = self.stats()
        return [
            replace(
                found[0],
                reserved_cores=stats.requested_cores,
                reserved_memory_bytes=int(stats.requested_ram_gb * GIB),
                sessions=stats.interactive + stats.desktop_apps + stats.headless,
                gpus=stats.gpus,
                reserved_gpus=stats.requested_gpus,
            )
        ]

    # --- changes --------------------------------------------------------------------------

    async def renew(self, user: User, session_id: str, action: str | None) -> datetime:
        """skaha's renew: the deadline becomes now + the session lifetime, when that is later."""
        if action is None:
            raise InvalidRequest("Cannot modify an existing session")
        if action != "renew":
            raise InvalidRequest("unrecognized action")
        session = self._store.get(session_id)
        live = session is not None and session.user == user.name and session.status.live
        if session is None or not live or session.parent_id is not None:  # an app renews with its desktop
            raise InvalidRequest(f"No active job for user {user.name} with session {session_id}")
        new_expiry = max(session.expiry_time, policy.expiry(self._clock(), self._settings.session_expiry_seconds))
        for target in [session, *self._store.apps_of(session_id)]:  # skaha renews the desktop's apps too
            self._store.set_expiry(target.id, new_expiry)
        self.event(session_id, "Renewed", f"Expiry moved to {new_expiry.isoformat()}")
        return new_expiry

    async def delete(self, user: User, session_id: str) -> None:
        session = self._store.get(session_id)
        if session is None or session.parent_id is not None:
            raise NotFound(session_id)  # skaha's body: the id alone
        if session.user != user.name:
            raise Forbidden("forbidden")
        await self.terminate(session)

    async def delete_app(self, user: User, desktop_id: str, app_id: str) -> None:
        await self.terminate(self.get_app(user, desktop_id, app_id))

    def terminating(self, session_id: str) -> bool:
        return session_id in self._terminations

    async def stop_container(self, session: Session) -> None:
        """Stop a session's container, keeping it and its logs (its record says how it ended)."""
        await self._runtime.stop(self.container_name(session))

    async def stop_over_quota(self, session: Session, reason: str) -> None:
        """Stop a running session whose owner's home is over its quota: it ends Failed, with `reason` as its
        last event; its container and logs stay until it is deleted."""
        # Failed first: the container's exit (often 0, an app that ends cleanly when asked) is then no news.
        if not self._store.finish(session.id, Status.FAILED, self._clock(), STOPPED_BY_PLATFORM):
            return  # it ended, or a delete began, meanwhile
        self.event(session.id, "QuotaExceeded", reason, warning=True)
        log.warning("stopping session %s of %s: %s", session.id, session.user, reason)
        await self.stop_container(session)  # should this fail, housekeeping stops an ended session still running

    async def terminate(self, session: Session) -> None:
        """Remove a session entirely: container, files, row. Concurrent calls share one removal."""
        task = self._terminations.get(session.id)
        if task is None:
            self._store.set_status(session.id, Status.TERMINATING)
            task = asyncio.create_task(self._remove(session), name=f"terminate-{session.id}")
            self._terminations[session.id] = task
            task.add_done_callback(lambda _: self._terminations.pop(session.id, None))
        await asyncio.shield(task)

    async def _remove(self, session: Session) -> None:
        # A desktop's apps die with it.
        await asyncio.gather(*(self.terminate(app) for app in self._store.apps_of(session.id)))
        async with self._lock(session.id):
            await self._runtime.remove(self.container_name(session))
            shutil.rmtree(self._settings.session_files(session.id), ignore_errors=True)
            self._store.remove(session.id)
        self._locks.pop(session.id, None)
