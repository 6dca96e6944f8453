"""The housekeeping pass the service runs every `loop_interval` seconds, and start-up reconciliation.

A pass resumes Pending sessions nobody is bringing up (after a service restart), turns
container exits into Succeeded/Failed, removes expired sessions, drops ended sessions after
their retention time, starts the jobs waiting in the queue that fit now (queue.py), and re-loads
the gateway when it is not running the emulator's routing table (e.g. the gateway container
restarted). One session's trouble is logged and never stops the pass for the others.

Reconciliation, once at start: Docker labels are the lasting truth about what exists; rows say
what should. A session container of this instance with no row is an orphan and is removed, as is
any helper container a crash left; the gateway gets its whole table anew. Pending rows are
resumed by the first pass (bring-up is idempotent), bar the jobs waiting in the queue, which stay there;
a Running session's fault (faults.py) is armed again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta

from emulator import labels
from emulator.core.endings import Endings
from emulator.core.models import Session, Status
from emulator.core.networks import UserNetworks
from emulator.core.sessions import SessionManager
from emulator.core.store import Store
from emulator.errors import EmulatorError
from emulator.gateway.base import Gateway, GatewayTable
from emulator.profiles import Profile
from emulator.runtime.base import ContainerState, Runtime
from emulator.settings import Settings

log = logging.getLogger(__name__)


class Housekeeper:
    def __init__(
        self,
        manager: SessionManager,
        store: Store,
        runtime: Runtime,
        gateway: Gateway,
        table: GatewayTable,
        profiles: dict[str, Profile],
        settings: Settings,
        networks: UserNetworks,
    ) -> None:
        self._manager = manager
        self._store = store
        self._runtime = runtime
        self._gateway = gateway
        self._table = table
        self._profiles = profiles
        self._settings = settings
        self._networks = networks
        self._endings = Endings(store, runtime, profiles, manager.record)  # how sessions end, as the pass finds them

    async def sync_gateway(self, force: bool = False) -> None:
        """Load the gateway's table if it is not running it (e.g. the gateway container restarted)."""
        table = self._table
        if not force:
            try:
                if await self._gateway.is_loaded(table):
                    return
            except EmulatorError:
                return  # the gateway is down; try again on the next pass
            log.warning("the gateway is not running the emulator's routes; loading them")
        await self._gateway.load(table)
        await self._networks.rejoin()  # a new gateway container has joined no user network yet

    async def reconcile(self) -> list[str]:
        """Bring Docker and the gateway in line with the rows (at start); returns what was repaired."""
        instance = self._settings.instance
        repairs: list[str] = []
        for container in await self._runtime.containers(labels.selector(instance, labels.ROLE_SESSION)):
            if self._store.get(labels.row_of(container.labels)) is None:
                await self._runtime.remove(container.name)
                repairs.append(f"removed orphan container {container.name}")
        for container in await self._runtime.containers(labels.selector(instance, labels.ROLE_HELPER)):
            await self._runtime.remove(container.name)
        await self.sync_gateway(force=True)
        await self._networks.sweep(self._manager.known_users)
        for session in self._store.sessions():
            if session.status is Status.RUNNING:
                self._manager.faults.resume(session)
            if (
                session.status is Status.PENDING
                and session.queued_at is None
                and not self._manager.faults.holds(session)
            ):
                # (One held unscheduled on purpose is held again, with no word: a scheduler's restart says none.)
                self._manager.record.event(session.id, "Resumed", "The service restarted during launch; resuming it")
                repairs.append(f"resuming launch of {session.id}")
        for line in repairs:
            log.warning(line)
        return repairs

    async def run_once(self) -> None:
        # Rows first, containers second: a container missing from the listing then really was missing
        # when its row was read (a launch that starts meanwhile is in flight and skipped).
        sessions = self._store.sessions()
        selector = labels.selector(self._settings.instance, labels.ROLE_SESSION)
        containers = {labels.row_of(c.labels): c for c in await self._runtime.containers(selector)}
        for listed in sessions:
            session = self._store.get(listed.id)  # fresh: a renew or delete may have landed meanwhile
            if session is None or self._manager.terminating(session.id):
                continue
            try:
                await self._keep(session, containers.get(session.id))
            except Exception:
                log.exception("housekeeping of session %s failed", session.id)
        try:
            self._manager.queue.advance()  # what ended in this pass freed room; and the waiting lines stay current
        except Exception:
            log.exception("could not start the jobs waiting in the queue")
        try:
            await self.keep_quotas()
        except Exception:
            log.exception("could not keep the users' home quotas")
        try:
            await self.sync_gateway()
        except Exception:
            log.exception("could not bring the gateway up to date")

    async def keep_quotas(self) -> None:
        """Stop the running sessions of each user whose home has reached its quota (core/quotas.py)."""
        quotas = self._manager.quotas
        if not quotas.enabled:
            return
        running: dict[str, list[Session]] = {}
        for session in self._store.sessions():
            if session.status is Status.RUNNING and not self._manager.terminating(session.id):
                running.setdefault(session.user, []).append(session)
        written = await quotas.written_by_user() if any(quotas.known(u) is None for u in running) else {}
        stopping = []
        for user, sessions in running.items():
            use = await quotas.home_use(user, written)
            if use.full:
                stopping += [self._endings.stop_over_quota(s, quotas.stop_reason(use, user)) for s in sessions]
        for failed in await asyncio.gather(*stopping, return_exceptions=True):  # each waits for its grace at once
            if isinstance(failed, Exception):
                log.error("could not stop a session over its quota: %s", failed)  # the next pass stops it

    def _batch(self, session: Session) -> bool:
        profile = self._profiles.get(session.type)
        return profile is not None and profile.batch

    # Over the complexity limit on purpose: one case per branch, and their order is the rule (the first that
    # holds decides), which reads best as one chain.
    async def _keep(self, session: Session, container: ContainerState | None) -> None:  # noqa: C901
        manager = self._manager
        now = manager.now()
        if session.parent_id is not None:
            desktop = self._store.get(session.parent_id)
            if desktop is None or not desktop.status.live:
                await manager.terminate(session)  # a desktop-app dies with its desktop
                return
        if session.status.live and manager.user_removed(session.user):
            log.warning("ending session %s of %s, who was removed from the users file", session.id, session.user)
            await manager.terminate(session)  # nobody could delete it any more, and it writes in a kept home
        elif session.status is Status.TERMINATING:
            await manager.terminate(session)  # a delete the service did not finish before it stopped
        elif session.status.final and container is not None and container.state == "running":
            await self._endings.stop_container(session)  # ended in its record (over its quota), yet running: end it
        elif session.status.final:
            retention = timedelta(seconds=self._settings.retention_seconds(self._batch(session)))
            if session.ended_at is None or now >= session.ended_at + retention:
                await manager.terminate(session)
        elif now >= session.expiry_time:
            log.info("session %s expired at %s; removing it", session.id, session.expiry_time)
            manager.record.observers.session_expired(session)
            await manager.terminate(session)
        elif session.queued_at is not None:
            return  # a job waiting in the queue, never a launch to resume: the queue starts it (queue.py)
        elif container is not None and container.state in ("exited", "dead"):
            await self._endings.ended(session, container.exit_code)  # a starting session's probe then stops on its own
        elif container is not None and container.state == "restarting":
            manager.record.event(session.id, "BackOff", "Back-off restarting failed container", warning=True)
        elif manager.bring_up.in_flight(session.id):
            return
        elif session.status is Status.PENDING:
            manager.bring_up.start(session.id)  # a launch (or probe) the service did not finish: resume it
        elif container is None:
            await self._endings.fail_vanished(session)


MIN_GAP = 0.2  # seconds between two passes woken by events


async def run_forever(
    work: Callable[[], Awaitable[None]], interval: float, what: str, wake: asyncio.Event | None = None
) -> None:
    """Run `work` whenever `wake` is set, and at least every `interval` seconds, until cancelled; a
    failed round is logged and the next one runs."""
    while True:
        if wake is not None:
            wake.clear()  # before the work: a change that comes during it brings another round
        try:
            await work()
        except asyncio.CancelledError:
            raise
        except Exception:  # e.g. Docker unreachable for a moment: try again on the next round
            log.exception("%s failed", what)
        if wake is None:
            await asyncio.sleep(interval)
        else:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), interval)
            await asyncio.sleep(MIN_GAP)  # a burst of events (a launch's helper containers) makes one pass
