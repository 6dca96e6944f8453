"""The housekeeping pass the service runs every `loop_interval` seconds.

It resumes Pending sessions nobody is bringing up (after a service restart),
turns container exits into Succeeded/Failed, removes expired sessions, drops
ended sessions after their retention time, and re-loads the gateway when it is not
running the emulator's routing table (e.g. the gateway container restarted). One
session's trouble is logged and never stops the pass for the others.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta

from emulator import labels
from emulator.core.models import Session, Status
from emulator.core.sessions import SessionManager
from emulator.errors import EmulatorError
from emulator.runtime.base import ContainerState

log = logging.getLogger("emulator.lifecycle")


class Housekeeper:
    def __init__(self, manager: SessionManager, api_upstream: str) -> None:
        self.manager = manager
        self.api_upstream = api_upstream

    async def sync_gateway(self, force: bool = False) -> None:
        """Load the gateway's table if it is not running it (e.g. the gateway container restarted)."""
        routes = self.manager.type_routes()
        if not force:
            try:
                if await self.manager.gateway.is_loaded(self.api_upstream, routes):
                    return
            except EmulatorError:
                return  # the gateway is down; try again on the next pass
            log.warning("the gateway is not running the emulator's routes; loading them")
        await self.manager.gateway.load(self.api_upstream, routes)

    async def run_once(self) -> None:
        manager = self.manager
        # Rows first, containers second: a container missing from the listing then really was missing
        # when its row was read (a launch that starts meanwhile is in flight and skipped).
        sessions = manager.store.sessions()
        selector = labels.selector(manager.settings.instance, labels.ROLE_SESSION)
        containers = {labels.row_of(c.labels): c for c in await manager.runtime.containers(selector)}
        for listed in sessions:
            session = manager.store.get(listed.id)  # fresh: a renew or delete may have landed meanwhile
            if session is None or manager.terminating(session.id):
                continue
            try:
                await self._keep(session, containers.get(session.id))
            except Exception:
                log.exception("housekeeping of session %s failed", session.id)
        try:
            await self.sync_gateway()
        except Exception:
            log.exception("could not bring the gateway up to date")

    async def _keep(self, session: Session, container: ContainerState | None) -> None:
        manager = self.manager
        now = manager.clock()
        if session.parent_id is not None:
            desktop = manager.store.get(session.parent_id)
            if desktop is None or not desktop.status.live:
                await manager.terminate(session)  # a desktop-app dies with its desktop
                return
        if session.status is Status.TERMINATING:
            await manager.terminate(session)  # a delete the service did not finish before it stopped
        elif session.status.final:
            retention = timedelta(seconds=manager.settings.retention_seconds(session.type))
            if session.ended_at is None or now >= session.ended_at + retention:
                await manager.terminate(session)
        elif now >= session.expiry_time:
            log.info("session %s expired at %s; removing it", session.id, session.expiry_time)
            await manager.terminate(session)
        elif container is not None and container.state in ("exited", "dead"):
            self._ended(session, container)  # a starting session's probe then stops on its own
        elif container is not None and container.state == "restarting":
            manager.event(session.id, "BackOff", "Back-off restarting failed container", warning=True)
        elif manager.in_flight(session.id):
            return
        elif session.status is Status.PENDING:
            manager.start(session.id)  # a launch (or probe) the service did not finish: resume it
        elif container is None and await manager.runtime.state(manager.container_name(session)) is None:
            manager.store.set_status(session.id, Status.FAILED, ended_at=now)
            manager.event(session.id, "Failed", "The session's container disappeared", warning=True)

    def _ended(self, session: Session, container: ContainerState) -> None:
        manager = self.manager
        code = container.exit_code if container.exit_code is not None else -1
        status = Status.SUCCEEDED if code == 0 else Status.FAILED
        manager.store.set_status(session.id, status, ended_at=manager.clock(), exit_code=code)
        manager.event(
            session.id,
            "Completed" if code == 0 else "Failed",
            f"Container exited with code {code}",
            warning=code != 0,
        )


async def run_forever(work: Callable[[], Awaitable[None]], interval: float, what: str) -> None:
    """Run `work` every `interval` seconds until cancelled; a failed round is logged and the next one runs."""
    while True:
        try:
            await work()
        except asyncio.CancelledError:
            raise
        except Exception:  # e.g. Docker unreachable for a moment: try again on the next round
            log.exception("%s failed", what)
        await asyncio.sleep(interval)
