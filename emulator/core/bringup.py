"""Bringing an admitted session up, in the background: its image pulled if need be (pulls.py), its owner's
home, projects and network made meanwhile, its container created and started (under the session's lock,
locks.py, so a delete never leaves one behind), then, once an orchestrator has placed it, its readiness
probed through the gateway. Any failure fails the session, in words its events show (record.py). A fault
its launch asked for (faults.py) holds it unscheduled, fails its pull, or is armed once it runs.

Launch starts one bring-up per session; housekeeping starts one for a Pending session nobody is bringing
up (after a service restart: every step is idempotent).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from emulator.core.addresses import SessionAddresses
from emulator.core.callback import CallbackTokens
from emulator.core.contract import build_spec, template_values
from emulator.core.disk import disk_full_words, is_disk_full
from emulator.core.faults import Faults
from emulator.core.identity import UsersSource
from emulator.core.locks import SessionLocks
from emulator.core.models import Session, Status, User
from emulator.core.networks import UserNetworks
from emulator.core.observers import FailureCause
from emulator.core.policy import GIVE_UP_FACTOR
from emulator.core.probe import GatewayProbes, probe_path, wait_until_ready
from emulator.core.provision import IdentityFiles, ensure_home, ensure_projects
from emulator.core.pulls import SessionPulls
from emulator.core.record import SessionRecord
from emulator.core.store import Store
from emulator.core.tasks import SessionTasks
from emulator.core.usage import UsageSampler
from emulator.errors import EmulatorError, EngineError, Unavailable
from emulator.profiles import Profile
from emulator.runtime.base import ContainerState, Runtime
from emulator.settings import Settings

log = logging.getLogger(__name__)

ENGINE_FAILURE = "The container engine could not start the session; the emulator's log says why"
PLACEMENT_POLL = 0.25  # seconds between looks at a session an orchestrator has not placed yet


@dataclass(frozen=True)
class SessionServices:
    """What sessions use besides the store and the engine: their callback tokens, their usage figures, their
    owners' networks, the gateway's readiness probes, and their addresses (which the gateway's name server
    answers)."""

    callbacks: CallbackTokens
    usage: UsageSampler
    networks: UserNetworks
    probes: GatewayProbes
    addresses: SessionAddresses


@dataclass(frozen=True)
class _Created:
    """A session whose container the engine was asked to run, with what it was made from."""

    session: Session
    profile: Profile
    user: User
    container: str
    state: ContainerState


class BringUp:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        runtime: Runtime,
        profiles: dict[str, Profile],
        users: UsersSource,
        services: SessionServices,
        record: SessionRecord,
        locks: SessionLocks,
        pulls: SessionPulls,
        faults: Faults,
    ) -> None:
        self._settings = settings
        self._store = store
        self._runtime = runtime
        self._profiles = profiles
        self._users = users
        self._services = services
        self._record = record
        self._locks = locks
        self._pulls = pulls
        self._faults = faults
        self._identity = IdentityFiles(runtime, settings)
        self._tasks = SessionTasks("bring-up")

    def in_flight(self, session_id: str) -> bool:
        task = self._tasks.get(session_id)
        return task is not None and not task.done()

    def start(self, session_id: str) -> None:
        """Bring a Pending session up in the background (also used to resume after a restart)."""
        if not self.in_flight(session_id):
            self._tasks.start(session_id, self._bring_up(session_id))

    def running(self) -> list[asyncio.Task[None]]:
        """The bring-ups under way (the service cancels them when it stops)."""
        return self._tasks.running()

    async def _bring_up(self, session_id: str) -> None:
        """Pull the image if need be, create and start the container, then probe readiness; any failure
        fails the session. The pull happens outside the session's lock, so a delete never waits for it."""
        fail = self._record.fail_start
        try:
            await self._steps(session_id)
        except asyncio.CancelledError:
            raise
        except (EngineError, Unavailable) as exc:  # the engine's words go to the log, not to the user
            log.error("bring-up of %s failed: %s", session_id, exc.message)
            full = is_disk_full(exc)
            await fail(session_id, disk_full_words("the engine's disk") if full else ENGINE_FAILURE)
        except EmulatorError as exc:
            await fail(session_id, exc.message)
        except Exception as exc:  # a failure we did not foresee: the session fails, loudly in the log
            log.exception("bring-up of %s failed", session_id)
            await fail(session_id, disk_full_words("/arc or the state") if is_disk_full(exc) else ENGINE_FAILURE)

    async def _steps(self, session_id: str) -> None:
        pending = self._store.get(session_id)
        if pending is None or pending.status is not Status.PENDING or pending.queued_at is not None:
            return  # gone, ended, or a job still waiting in the queue (queue.py starts it)
        if self._faults.holds(pending):
            await self._faults.hold(session_id)  # no machine takes it, for as long as it is wanted
            return
        # The user's home, projects and network are made while the image is pulled (all idempotent).
        prepared = asyncio.create_task(self._prepare_user(pending.user))
        try:
            if not await self._pulls.ensure(pending):
                return
        finally:
            await prepared
        created = await self._create(session_id)
        if created is None:
            return
        # Outside the lock: a delete never waits for an orchestrator to find the session a machine.
        placed = await self._placed(session_id, created.container, created.state)
        if placed is not None:
            await self._started(created, placed)

    async def _create(self, session_id: str) -> _Created | None:
        """Have the engine run the session's container, under its lock (None: it is no longer Pending)."""
        async with self._locks.of(session_id):
            session = self._store.get(session_id)
            if session is None or session.status is not Status.PENDING:
                return None
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
            token = self._services.callbacks.token(session.id)
            spec = build_spec(profile, session, user, self._settings, token)
            state = await self._runtime.run(spec)
        return _Created(session, profile, user, spec.name, state)

    async def _started(self, created: _Created, state: ContainerState) -> None:
        """The orchestrator started the container (or a machine could not): Running, or probe it for Ready."""
        session, profile = created.session, created.profile
        self._services.addresses.remember(created.container, state.address)
        if state.state == "dead" and state.reason is not None:  # a machine could not start it
            return  # housekeeping fails it with the reason
        # (One that ran and ended at once, a quick job, did start.)
        where = f" on {state.node}" if state.node else ""
        self._record.event(session.id, "Started", f"Started container {created.container}{where}")
        if profile.readiness is None or not profile.interactive:
            if self._store.mark_running(session.id):
                self._record.event(session.id, "Running", "Container is running")
                self._faults.arm(session)
            return
        if state.address is None:
            return  # it exited or is restarting already; housekeeping reports what happened
        await self._probe(session, profile, created.user)

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
                self._tell_placement(session_id, state)
                told = (state.reason, state.node)
            if state.node and given_at is None:
                given_at = loop.time()
            if given_at is not None and loop.time() - given_at > self._settings.pull_stall_seconds:
                await self._record.fail_start(
                    session_id,
                    f"{state.node} did not start it within {self._settings.pull_stall_seconds:g} s "
                    "(can that machine pull the image?)",
                )
                return None
            await asyncio.sleep(PLACEMENT_POLL)
            if not self._record.still_pending(session_id):
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

    def _tell_placement(self, session_id: str, state: ContainerState) -> None:
        if state.reason:
            self._record.event(session_id, "FailedScheduling", state.reason, warning=True)
        elif state.node:
            self._record.event(session_id, "Assigned", f"Assigned to {state.node}; starting it there")

    async def _prepare_user(self, name: str) -> None:
        """What every session of a user needs: their home, their projects and their network."""
        user = self._users.current().get(name)
        if user is None:
            raise EmulatorError(f"user {name} is no longer in the users file")
        ensure_home(self._settings.layout.arc_path, user, self._runtime.facts().arc_owner(user.uid, user.gid))
        ensure_projects(self._settings.layout.arc_path, user)
        await self._services.networks.ensure(user.name)

    async def _probe(self, session: Session, profile: Profile, user: User) -> None:
        assert profile.readiness is not None and profile.path_prefix is not None
        record, probes = self._record, self._services.probes
        path = probe_path(profile, template_values(profile, session, user, self._settings))
        ready = await wait_until_ready(
            url=f"{probes.base_url.rstrip('/')}{path}",
            probe=profile.readiness,
            answered_by_gateway=probes.answered_by_gateway,
            headers=probes.headers_for(session.id),
            interval=self._settings.probe_interval,
            still_wanted=lambda: record.still_pending(session.id),
            on_slow=lambda: record.event(
                session.id,
                "Unhealthy",
                f"Not ready after {profile.startup_timeout_seconds} s; still probing",
                warning=True,
            ),
            slow_after=profile.startup_timeout_seconds,
            give_up_after=GIVE_UP_FACTOR * profile.startup_timeout_seconds,
        )
        if ready and self._store.mark_running(session.id):
            record.event(session.id, "Ready", f"{session.type} answers on port {profile.port}")
            self._faults.arm(session)
        elif not ready and record.still_pending(session.id):  # never an endless Pending
            waited = GIVE_UP_FACTOR * profile.startup_timeout_seconds
            output = await record.last_output(session)
            await record.fail_start(
                session.id,
                f"Never ready: nothing answered on port {profile.port} in {waited} s "
                f"(startup_timeout_seconds x {GIVE_UP_FACTOR}).{output}",
                FailureCause.NEVER_READY,
            )
