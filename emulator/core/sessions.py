"""SessionManager: the verbs every face calls.

Public face (what the API and the portal call, at any time): `launch`, `attach_app`, `sessions`, `apps`, `get`,
`get_app`, `logs`, `events`, `pull_progress`, `renew` (renewal.py), `snapshot` (snapshots.py), `relaunch`
(relaunch.py), `delete`, `delete_app`, `connect_url`, `usage`, `usage_summary`, `catalogue`, `stats`, `nodes`,
`now`, `host_home`, `queue_length` and `jobs_ahead` (the jobs waiting for room), `broadcast` (notices.py: the
admins' message to the room), `admin` (admin.py: the admins' verbs over everyone's sessions), and the read-only
`context`, `repositories`, `max_sessions`, `limits`, `ram_counts_cache`, `distributed` and `quotas` (quotas.py).
Housekeeping (housekeeping.py) also calls `known_users`, `user_removed`, `terminating` and `terminate`, and uses
`bring_up` (bringup.py: it resumes a launch the service did not finish), `record` (record.py: the sessions' events,
which its endings write too), `faults` (faults.py: the faults launches asked for, whose clocks it re-arms after a
restart) and `queue` (queue.py: the jobs waiting for room, which it starts when they fit). The service calls `stop`
once, at shutdown. Everything else is private.

Launch validates and admits synchronously (so bad input leaves nothing behind) and answers with the id at once;
the session's bring-up (bringup.py: its pull, container and readiness probe) runs in the background, or, for a job
the machine has no room for now, once the queue (queue.py) starts it. A per-session lock (locks.py) orders it
against removal (removals.py): a delete during a launch never leaves a container behind.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

from emulator import naming
from emulator.core import accounting, apps, devmounts, policy, queries, relaunch, renewal, snapshots
from emulator.core.admin import Admin, Hooks
from emulator.core.bringup import BringUp, SessionServices
from emulator.core.contract import template_values
from emulator.core.disk import DiskWatch
from emulator.core.faults import Faults
from emulator.core.identity import UsersSource
from emulator.core.locks import SessionLocks
from emulator.core.models import (
    AppRequest,
    CatalogueEntry,
    Event,
    HostFacts,
    LaunchRequest,
    PlatformStats,
    Session,
    Status,
    User,
)
from emulator.core.notices import Broadcast
from emulator.core.pulls import CREDENTIALS_NEEDED, SessionPulls
from emulator.core.queue import JobQueue
from emulator.core.quotas import home_quotas
from emulator.core.record import SessionRecord, utcnow
from emulator.core.removals import Removals
from emulator.core.snapshots import Snapshots
from emulator.core.store import Store
from emulator.errors import Forbidden, InvalidRequest, NotFound
from emulator.profiles import Profile
from emulator.runtime.base import NodeInfo, Runtime, Usage
from emulator.runtime.engine import LimitSupport
from emulator.session_types import SessionType
from emulator.settings import Settings


class SessionManager:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        runtime: Runtime,
        profiles: dict[str, Profile],
        users: UsersSource,
        host: HostFacts,
        services: SessionServices,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._settings = settings
        self._store = store
        self._runtime = runtime
        self._profiles = profiles
        self._users = users
        self._host = host
        self._usage = services.usage
        self._clock = clock
        locks = SessionLocks()
        self.record = SessionRecord(store, runtime, settings.prefix, clock)
        self._pulls = SessionPulls(settings, store, runtime, self.record)
        self.faults = Faults(store, runtime, self.record)
        self.bring_up = BringUp(
            settings, store, runtime, profiles, users, services, self.record, locks, self._pulls, self.faults
        )
        self._removals = Removals(settings, store, runtime, self.record, locks)
        # Which GPUs a launch may get, and what admission allows, do not change while the service runs.
        placed_by_swarm = self.distributed and host.capacity.gpus > 0
        self._gpus = policy.GpuFacts(tuple(host.gpu_devices), placed_by_swarm, host.gpu_note)
        self._admission = policy.admission_limits(settings, host.capacity)
        self.queue = JobQueue(
            store, self.record, self._gpus, self._admission, self._schedule, lambda job: self._pulls.forget(job.id)
        )
        self._disk = DiskWatch(
            {"/arc": settings.layout.arc_path, "the platform's state": settings.layout.state_path}, settings.min_free_gb
        )
        self._snapshots = Snapshots(settings, store, runtime, profiles, self.record, locks, self._disk)
        self.admin = Admin(
            settings, store, runtime, users, self.record, Hooks(self.terminate, self.usage, self.connect_url)
        )
        self.quotas = home_quotas(settings, runtime, store)
        self.broadcast = Broadcast(store, clock)
        self._mounts_refused = devmounts.refusal(settings)  # why launches may not mount host folders ("": they may)
        self._platform_folders = devmounts.platform_folders(settings)

    # --- read-only facts ------------------------------------------------------------------

    @property
    def context(self) -> dict[str, Any]:
        """skaha's /context: the cores, RAM and GPU options a launch may ask for."""
        return self._host.context

    @property
    def repositories(self) -> list[str]:
        return self._settings.repositories

    @property
    def max_sessions(self) -> int:
        return self._settings.max_sessions

    @property
    def limits(self) -> LimitSupport:
        """Which of the contract's limits the engine enforces on sessions (the runtime asked it once), so the
        figures shown beside them never promise what the machine does not keep."""
        return self._runtime.facts().limits

    @property
    def ram_counts_cache(self) -> bool:
        """The engine's figure of RAM in use includes the page cache (it gives no breakdown to subtract)."""
        return self._runtime.facts().memory_counts_cache

    @property
    def distributed(self) -> bool:
        """Sessions are placed across several machines (a swarm), not run on this one."""
        return self._settings.orchestrator != "engine"

    def now(self) -> datetime:
        return self._clock()

    def host_home(self, user: User) -> Path:
        """The user's home on the host (their /arc/home/<name>)."""
        return self._settings.layout.user_home(user.name)

    def user_removed(self, name: str) -> bool:
        """The user left the users file (`emulate users rm`) without their sessions being kept."""
        return self._users.current().removed(name)

    def known_users(self) -> set[str]:
        """Everyone in the users file, and anyone who still has a session."""
        return {u.name for u in self._users.current().users} | {s.user for s in self._store.sessions()}

    def connect_url(self, session: Session) -> str:
        profile = self._profiles.get(session.type)
        user = self._users.current().get(session.user)
        if profile is None or user is None or profile.connect_url == "not-applicable":
            return "not-applicable"
        return profile.render(profile.connect_url, template_values(profile, session, user, self._settings))

    def usage(self, session: Session) -> Usage | None:
        return self._usage.of(session)

    # --- launch ---------------------------------------------------------------------------

    async def _check_space(self, user: User) -> None:
        """Room on the server's disks, and in the user's share of them (DiskFull, 507, in words)."""
        self._disk.check()
        if self.quotas.enabled:
            self.quotas.check_launch(await self.quotas.home_use(user.name), user.name)

    async def launch(self, user: User, request: LaunchRequest) -> str:
        # The rules are core.policy's (the test kit applies the same): its first refusals, then the disks and the
        # image checked (awaited), then the rest, in skaha's order of refusals.
        checked = policy.check_launch(
            request.name,
            request.image,
            request.type,
            request.registry_auth,
            self._profiles,
            fault=request.fault,
            env=request.env,
            faults_refused=None if self._settings.faults else policy.FAULTS_OFF,
        )
        targets = checked.profile.mounts if checked.profile else {}
        mounts = devmounts.dev_mounts(
            request.mounts, self._mounts_refused, request.by_session, targets, self._platform_folders
        )
        await self._check_space(user)
        must_pull = await self._pulls.check(checked.image, checked.type, checked.credentials, user.name)
        gpus = self._gpus
        plan = policy.plan_launch(
            checked,
            policy.ResourceRequest(request.cores, request.ram, request.gpus),
            request.env,
            request.cmd,
            request.args,
            context=self._host.context,
            gpus=gpus,
            now=self._clock(),
            lifetime_seconds=self._settings.lifetime_seconds,
            mounts=mounts,
        )
        # No await from here to admit(): GPU choice and admission happen in one step of the loop.
        # Across a swarm, Swarm gives the session GPUs of the machine it places it on (generic resources).
        devices: list[str] | None
        if checked.profile is not None and checked.profile.queue:
            devices = self.queue.place_gpus(plan.resources.gpus)  # None: all taken, and the job waits for them
        else:
            devices = gpus.pick(self._store.gpu_devices_in_use(), plan.resources.gpus)  # refuses when too few are free
        session = plan.session(naming.new_session_id(), user.name, devices or [])
        while not self._store.admit(session, self._settings.max_sessions, self._admission, gpus_busy=devices is None):
            session.id = naming.new_session_id()
        if must_pull and not self.faults.holds(session):  # one never scheduled pulls nothing (no credentials kept)
            self._pulls.request(session.id, checked.credentials)  # in memory, until its bring-up pulls
        if session.queued_at is None:
            self._schedule(session)
        else:
            self.queue.tell()  # it waits: no GPU, no pull, no container until the queue starts it
        return session.id

    def _schedule(self, session: Session, waited: float | None = None) -> None:
        """An admitted session is given the machine (`waited`: the seconds a job waited in the queue first), its
        bring-up started; one whose launch asked never to be scheduled is held unscheduled."""
        if self.faults.holds(session):
            self.faults.unschedulable(session.id)
        else:
            queued = f" after {waited:.0f} s in the queue" if waited is not None else ""
            self.record.event(
                session.id, "Scheduled", f"Assigned {session.type} session {session.id} to this machine{queued}"
            )
        self.bring_up.start(session.id)

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
        must_pull = await self._pulls.check(image_ref, profile.type, credentials, user.name)
        resources = policy.resolve_resources(
            policy.ResourceRequest(request.cores, request.ram),
            self._host.context,
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
            self._pulls.request(app.id, credentials)
        self.record.event(app.id, "Scheduled", apps.scheduled_message(app))
        self.bring_up.start(app.id)
        return app.app_id or ""

    async def stop(self) -> None:
        """Cancel every background task (service shutdown)."""
        tasks = [*self.bring_up.running(), *self._removals.running(), *self.faults.running()]
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
            await self._runtime.logs(self.record.container_name(s), tail, limit)
            for s in [session, *self._store.apps_of(session.id)]
        ]
        return "".join(parts)

    def events(self, user: User, session_id: str) -> list[Event]:
        return self._store.events(self.get(user, session_id).id)

    def pull_progress(self, user: User, session_id: str) -> dict[str, object] | None:
        """How far the pull a Pending session waits for has come (an emulator extension: view=pull)."""
        self.get(user, session_id)  # the caller's own session, or 404
        return self._pulls.progress(session_id)

    async def catalogue(self, user: User, session_type: str | None) -> list[CatalogueEntry]:
        """Local images labelled with session types (of one type, if given) that this user may launch, by name."""
        private = self._store.private_image_ids()
        mine = partial(snapshots.visible, user=user.name, instance=self._settings.instance)
        return queries.catalogue(await self._runtime.images(), private, session_type, mine)

    def stats(self) -> PlatformStats:
        return queries.platform_stats(self._store.sessions(), self._profiles, self._host)

    def queue_length(self) -> int:
        """How many jobs wait in the queue for room (queue.py)."""
        return self.queue.length()

    def jobs_ahead(self) -> dict[str, int]:
        """Each waiting job's id, with how many jobs (anyone's) wait ahead of it."""
        return self.queue.ahead()

    def usage_summary(self, since: datetime | None = None) -> list[accounting.UsageLine]:
        """What ended sessions used, per user and type (core/accounting.py), since `since` if given."""
        return accounting.summarize(self._store.usage_records(since), since)

    async def nodes(self) -> list[NodeInfo]:
        """The machines sessions run on, with what each holds: a swarm's nodes as Swarm reserves them, or this
        one machine with what its running sessions asked for."""
        found = await self._runtime.nodes()
        if self.distributed or len(found) != 1:
            return found
        return [queries.with_sessions(found[0], self.stats())]

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
        return renewal.extend(self._store, self.record, session, self._settings.session_expiry_seconds, user)

    async def snapshot(self, user: User, session_id: str, tag: str | None) -> str:
        """Save the caller's Running session as an image (an emulator extension: action=snapshot); its name."""
        return await self._snapshots.save(user, session_id, tag)

    async def relaunch(self, user: User, session_id: str, registry_auth: str | None = None) -> str:
        """Launch the caller's ended interactive session again with its type, image, name and resources (not its
        env, nor credentials: relaunch.py); the new session's id. The ended one stays listed until removed."""
        session = self._store.get(session_id)
        if session is None or session.user != user.name or session.parent_id is not None:
            raise NotFound(f"session {session_id} not found")
        profile = self._profiles.get(session.type)
        relaunch.check_relaunchable(session, profile)
        assert profile is not None  # check_relaunchable refused a type without one
        try:
            return await self.launch(user, relaunch.launch_request(session, profile, registry_auth))
        except policy.SessionLimitReached as exc:
            raise policy.SessionLimitReached(relaunch.limit_reached(session, exc.message)) from None
        except InvalidRequest as exc:
            if exc.message == CREDENTIALS_NEEDED:  # skaha's words name a header the portal's user never sees
                raise InvalidRequest(relaunch.credentials_again(session)) from None
            raise

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
        return self._removals.under_way(session_id)

    async def terminate(self, session: Session) -> None:
        """Remove a session entirely: container, files, row. Concurrent calls share one removal. What it held
        (or its place in the queue) frees: the queue moves."""
        self.faults.disarm(session.id)
        self._pulls.forget(session.id)  # a waiting job's pull request, with any credentials it kept
        await self._removals.remove(session)
        self.queue.advance()
