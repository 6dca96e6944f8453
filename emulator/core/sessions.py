"""SessionManager: the verbs every face calls (launch, get, list, delete, renew, logs, events).

Launch validates and admits synchronously (so bad input leaves nothing behind) and
answers with the id at once; bringing the container up, routing it and probing its
readiness happen in a background task. A per-session lock orders bring-up against
delete, so a delete during a launch can never leave a container behind.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from emulator import labels, naming
from emulator.core import policy
from emulator.core.apps import DesktopApps
from emulator.core.callback import CallbackTokens
from emulator.core.identity import UsersSource
from emulator.core.models import Event, Session, Status, User
from emulator.core.probe import wait_until_ready
from emulator.core.provision import IdentityFiles, ensure_home
from emulator.core.store import Store
from emulator.errors import EmulatorError, Forbidden, InvalidRequest, NotFound
from emulator.gateway.base import Gateway, TypeRoute
from emulator.profiles import Profile
from emulator.runtime.base import ImageInfo, Runtime, Usage
from emulator.runtime.spec import (
    build_spec,
    session_files_dir,
    template_values,
)
from emulator.settings import Settings

log = logging.getLogger("emulator.sessions")


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


class SessionManager:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        runtime: Runtime,
        gateway: Gateway,
        profiles: dict[str, Profile],
        users: UsersSource,
        context: dict[str, Any],
        gpu_devices: list[str] | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.settings = settings
        self.store = store
        self.runtime = runtime
        self.gateway = gateway
        self.profiles = profiles
        self.users = users
        self.context = context
        self.gpu_devices = gpu_devices or []
        self.clock = clock
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._terminations: dict[str, asyncio.Task[None]] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self.callbacks = CallbackTokens(settings.state_path / "callback.key")
        self.identity = IdentityFiles(runtime, settings)
        self.apps = DesktopApps(self)
        # Memory and CPU in use, by container, refreshed in the background (as metrics-server feeds
        # `kubectl top`): asking Docker on every API call would cost about a second a session.
        self.usage: dict[str, Usage] = {}

    # --- helpers --------------------------------------------------------------------------

    def _lock(self, session_id: str) -> asyncio.Lock:
        return self._locks.setdefault(session_id, asyncio.Lock())

    def container_name(self, session: Session) -> str:
        return naming.session_container(self.settings.prefix, session.type, session.id)

    def event(self, session_id: str, reason: str, message: str, warning: bool = False) -> None:
        self.store.record_event(session_id, "Warning" if warning else "Normal", reason, message, self.clock())

    def type_routes(self) -> list[TypeRoute]:
        """The gateway's table: one route per path prefix of each interactive session type."""
        routes = []
        scheme = self.settings.base_url.split("://", 1)[0]
        for profile in self.profiles.values():
            if not profile.interactive or profile.port is None or profile.path_prefix is None:
                continue
            headers = {k: v.format(forwarded_proto=scheme) for k, v in profile.request_headers.items()}
            container_prefix = naming.session_container(self.settings.prefix, profile.type, "")
            prefixes = [(profile.path_prefix, profile.port, profile.strip_prefix)]
            prefixes += [(r.path_prefix, r.port, r.strip_prefix) for r in profile.extra_routes]
            for index, (prefix, port, strip) in enumerate(prefixes):
                before, _, after = prefix.partition("{session_id}")
                routes.append(
                    TypeRoute(
                        session_type=profile.type if index == 0 else f"{profile.type}-{index}",
                        path_before=before,
                        path_after=after,
                        container_prefix=container_prefix,
                        port=port,
                        strip_prefix=strip,
                        request_headers=headers,
                    )
                )
        return sorted(routes, key=lambda r: r.session_type)

    def connect_url(self, session: Session) -> str:
        profile = self.profiles.get(session.type)
        user = self.users.current().get(session.user)
        if profile is None or user is None or profile.connect_url == "not-applicable":
            return "not-applicable"
        return profile.render(profile.connect_url, template_values(profile, session, user, self.settings))

    def owned(self, user: User, session_id: str) -> Session:
        session = self.store.get(session_id)
        if session is None or session.user != user.name or session.type == "desktop-app":
            raise NotFound(f"session {session_id} not found")
        return session

    def callback_user(self, token: str) -> User | None:
        """The owner of the live session a desktop's callback token (x-auth-token-skaha) was made for."""
        session_id = self.callbacks.session_of(token)
        session = self.store.get(session_id) if session_id else None
        if session is None or not session.status.live:
            return None
        return self.users.current().get(session.user)

    async def local_image(self, reference: str) -> ImageInfo:
        """The image a launch names; sessions run only from the local engine (never pulled on the way)."""
        image = await self.runtime.image(reference)
        if image is None:
            raise InvalidRequest(
                f"image '{reference}' is not in the local Docker engine; build it "
                "(emulate images build) or pull it (docker pull) first"
            )
        return image

    def in_flight(self, session_id: str) -> bool:
        task = self._tasks.get(session_id)
        return task is not None and not task.done()

    # --- launch ---------------------------------------------------------------------------

    async def launch(self, user: User, request: LaunchRequest) -> str:
        if not request.image:
            raise InvalidRequest("Missing parameter 'image'")
        name = policy.validate_name(request.name)
        session_type = policy.validate_type(request.type)
        if session_type == "desktop-app":
            raise InvalidRequest("a desktop-app is attached to a desktop: POST /session/<desktop id>/app")
        image = await self.local_image(request.image)
        declared = labels.image_session_types(image.labels)
        if declared is not None and session_type not in declared:
            raise InvalidRequest(f"image/type mismatch: {request.image}/{session_type}")
        profile = self.profiles.get(session_type)
        if profile is None:
            raise InvalidRequest(
                f"session type '{session_type}' is not available in this emulator yet (no profiles/{session_type}.yaml)"
            )
        resources = policy.resolve_resources(
            policy.ResourceRequest(request.cores, request.ram, request.gpus),
            self.context,
            profile.fixed_resources,
            profile.gpus_allowed,
            headless=session_type == "headless",
        )
        # No await from here to admit(): GPU allocation and admission happen in one step of the loop.
        devices = self._allocate_gpus(resources.gpus)
        now = self.clock()
        session = Session(
            id=naming.new_session_id(),
            user=user.name,
            type=session_type,
            name=name,
            image=request.image,
            status=Status.PENDING,
            resources=resources,
            start_time=now,
            expiry_time=policy.expiry(now, self.settings.lifetime_seconds(session_type)),
            env=policy.parse_env(request.env),
            cmd=request.cmd,
            args=request.args,
            gpu_devices=devices,
        )
        while not self.store.admit(session, self.settings.max_sessions):
            session.id = naming.new_session_id()
        self.event(session.id, "Scheduled", f"Assigned {session.type} session {session.id} to this machine")
        self.start(session.id)
        return session.id

    def _allocate_gpus(self, count: int) -> list[str]:
        if count == 0:
            return []
        in_use = self.store.gpu_devices_in_use()
        free = [d for d in self.gpu_devices if d not in in_use]
        if len(free) < count:
            raise InvalidRequest(f"Invalid value for 'gpus': {count} (only {len(free)} GPU(s) free on this machine)")
        return free[:count]

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

    async def _bring_up(self, session_id: str) -> None:
        """Create and start the container, then probe readiness; any failure fails the session."""
        try:
            async with self._lock(session_id):
                session = self.store.get(session_id)
                if session is None or session.status is not Status.PENDING:
                    return
                profile = self.profiles.get(session.type)
                if profile is None:
                    raise EmulatorError(f"no profile for session type '{session.type}' any more")
                user = self.users.current().get(session.user)
                if user is None:
                    raise EmulatorError(f"user {session.user} is no longer in the users file")
                ensure_home(self.settings.arc_path, user)
                await self.identity.write(session, user)
                spec = build_spec(profile, session, user, self.settings, self.callbacks.token(session.id))
                state = await self.runtime.run(spec)
                self.event(session_id, "Started", f"Started container {spec.name}")
            if profile.readiness is None or not profile.interactive:
                if self.store.mark_running(session_id):
                    self.event(session_id, "Running", "Container is running")
                return
            if state.address is None:
                return  # it exited or is restarting already; housekeeping reports what happened
            values = template_values(profile, session, user, self.settings)
            ready = await wait_until_ready(
                address=state.address,
                port=profile.port or 0,
                probe=profile.readiness,
                path=profile.render(profile.readiness.path, values),
                interval=self.settings.probe_interval,
                still_wanted=lambda: self._still_pending(session_id),
                on_slow=lambda: self.event(
                    session_id,
                    "Unhealthy",
                    f"Not ready after {profile.startup_timeout_seconds} s; still probing",
                    warning=True,
                ),
                slow_after=profile.startup_timeout_seconds,
            )
            if ready and self.store.mark_running(session_id):
                self.event(session_id, "Ready", f"{session.type} answers on port {profile.port}")
        except asyncio.CancelledError:
            raise
        except EmulatorError as exc:
            await self._fail(session_id, exc.message)
        except Exception as exc:  # a Docker error we did not foresee: the session fails, loudly
            log.exception("bring-up of %s failed", session_id)
            await self._fail(session_id, f"{exc.__class__.__name__}: {exc}")

    def _still_pending(self, session_id: str) -> bool:
        session = self.store.get(session_id)
        return session is not None and session.status is Status.PENDING

    async def _fail(self, session_id: str, reason: str) -> None:
        session = self.store.get(session_id)
        if session is None or session.status is not Status.PENDING:
            return  # deleted meanwhile
        try:
            await self.runtime.remove(self.container_name(session))
        except Exception:  # the row still says Failed; housekeeping removes the container with it later
            log.exception("could not remove the container of failed session %s", session_id)
        self.store.set_status(session_id, Status.FAILED, ended_at=self.clock())
        self.event(session_id, "Failed", reason, warning=True)

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
        sessions = self.store.sessions(user.name if user else None)
        if type_filter:
            sessions = [s for s in sessions if s.type.lower() == type_filter.lower()]
        if status_filter:
            sessions = [s for s in sessions if status_word(s.status).lower() == status_filter.lower()]
        return sessions

    async def logs(self, user: User, session_id: str) -> str:
        """The session's output; a desktop's includes its apps' (skaha selects by session label)."""
        session = self.owned(user, session_id)
        parts = [await self.runtime.logs(self.container_name(s)) for s in [session, *self.store.apps_of(session.id)]]
        return "".join(parts)

    def events(self, user: User, session_id: str) -> list[Event]:
        return self.store.events(self.owned(user, session_id).id)

    # --- changes --------------------------------------------------------------------------

    async def renew(self, user: User, session_id: str, action: str | None) -> datetime:
        """skaha's renew: the deadline becomes now + the session lifetime, when that is later."""
        if action is None:
            raise InvalidRequest("Cannot modify an existing session")
        if action != "renew":
            raise InvalidRequest("unrecognized action")
        session = self.store.get(session_id)
        if session is None or session.user != user.name or not session.status.live:
            raise InvalidRequest(f"No active job for user {user.name} with session {session_id}")
        new_expiry = max(session.expiry_time, policy.expiry(self.clock(), self.settings.session_expiry_seconds))
        for target in [session, *self.store.apps_of(session_id)]:  # skaha renews the desktop's apps too
            self.store.set_expiry(target.id, new_expiry)
        self.event(session_id, "Renewed", f"Expiry moved to {new_expiry.isoformat()}")
        return new_expiry

    async def delete(self, user: User, session_id: str) -> None:
        session = self.store.get(session_id)
        if session is None or session.type == "desktop-app":
            raise NotFound(session_id)
        if session.user != user.name:
            raise Forbidden("forbidden")
        await self.terminate(session)

    async def terminate(self, session: Session) -> None:
        """Remove a session entirely: container, files, row. Concurrent calls share one removal."""
        task = self._terminations.get(session.id)
        if task is None:
            self.store.set_status(session.id, Status.TERMINATING)
            task = asyncio.create_task(self._remove(session), name=f"terminate-{session.id}")
            self._terminations[session.id] = task
            task.add_done_callback(lambda _: self._terminations.pop(session.id, None))
        await asyncio.shield(task)

    async def _remove(self, session: Session) -> None:
        # A desktop's apps die with it.
        await asyncio.gather(*(self.terminate(app) for app in self.store.apps_of(session.id)))
        async with self._lock(session.id):
            await self.runtime.remove(self.container_name(session))
            shutil.rmtree(session_files_dir(self.settings, session.id), ignore_errors=True)
            self.store.remove(session.id)
        self._locks.pop(session.id, None)

    async def refresh_usage(self) -> None:
        """Sample every Running session's memory and CPU use (concurrently); forget the rest."""
        names = [self.container_name(s) for s in self.store.sessions() if s.status is Status.RUNNING]
        samples = await asyncio.gather(*(self.runtime.usage(name) for name in names))
        self.usage = {name: sample for name, sample in zip(names, samples, strict=True) if sample is not None}

    def terminating(self, session_id: str) -> bool:
        return session_id in self._terminations
