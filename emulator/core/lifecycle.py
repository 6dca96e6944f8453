"""The housekeeping pass the service runs every `loop_interval` seconds.

It turns container exits into Succeeded/Failed, removes expired sessions, drops
ended sessions after their retention time, and re-loads the gateway when it is not
running the emulator's routing table (e.g. the gateway container restarted).
"""

from __future__ import annotations

import asyncio
import logging
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
        now = manager.clock()
        settings = manager.settings
        containers = {
            c.labels.get(labels.SESSION_ID): c
            for c in await manager.runtime.containers(labels.selector(settings.instance, labels.ROLE_SESSION))
        }
        for session in manager.store.sessions():
            if session.status is Status.TERMINATING:
                if not manager.in_flight(session.id):
                    await manager.terminate(session)
            elif session.status.final:
                retention = (
                    settings.headless_retention_seconds
                    if session.type == "headless"
                    else (settings.finished_retention_seconds)
                )
                if session.ended_at and now >= session.ended_at + timedelta(seconds=retention):
                    await manager.terminate(session)
            elif now >= session.expiry_time:
                log.info("session %s expired at %s; removing it", session.id, session.expiry_time)
                await manager.terminate(session)
            else:
                await self._track(session, containers.get(session.id))
        await self.sync_gateway()

    async def _track(self, session: Session, container: ContainerState | None) -> None:
        manager = self.manager
        if container is None:
            if manager.in_flight(session.id):
                return  # bring-up is creating it
            if session.status is Status.PENDING:
                manager.start(session.id)  # resume a launch the service did not finish
                return
            manager.store.set_status(session.id, Status.FAILED, ended_at=manager.clock())
            manager.event(session.id, "Failed", "The session's container disappeared", warning=True)
            return
        if container.state in ("exited", "dead"):
            code = container.exit_code if container.exit_code is not None else -1
            status = Status.SUCCEEDED if code == 0 else Status.FAILED
            manager.store.set_status(session.id, status, ended_at=manager.clock(), exit_code=code)
            manager.event(
                session.id,
                "Completed" if code == 0 else "Failed",
                f"Container exited with code {code}",
                warning=code != 0,
            )
        elif container.state == "restarting":
            manager.event(session.id, "BackOff", "Back-off restarting failed container", warning=True)
        elif session.status is Status.PENDING and not manager.in_flight(session.id):
            manager.start(session.id)  # resume probing after a service restart


async def run_forever(keeper: Housekeeper, interval: float) -> None:
    while True:
        try:
            await keeper.run_once()
        except asyncio.CancelledError:
            raise
        except Exception:  # one bad pass must not stop housekeeping
            log.exception("housekeeping pass failed")
        await asyncio.sleep(interval)
