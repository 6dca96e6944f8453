"""Start-up reconciliation: SQLite rows <-> labelled containers, and the gateway's table.

Docker labels are the lasting truth about what exists; rows say what should. A
container of this instance with no row is an orphan and is removed; a Pending row
is resumed (bring-up is idempotent); the gateway gets its whole table anew.
"""

from __future__ import annotations

import logging

from emulator import labels
from emulator.core.lifecycle import Housekeeper
from emulator.core.models import Status

log = logging.getLogger("emulator.reconcile")


async def reconcile(keeper: Housekeeper) -> list[str]:
    """Bring Docker and the gateway in line with the rows; returns what was repaired."""
    manager = keeper.manager
    repairs: list[str] = []
    containers = await manager.runtime.containers(labels.selector(manager.settings.instance, labels.ROLE_SESSION))
    for container in containers:
        session_id = container.labels.get(labels.SESSION_ID, "")
        if manager.store.get(session_id) is None:
            await manager.runtime.remove(container.name)
            repairs.append(f"removed orphan container {container.name}")
    await keeper.sync_gateway(force=True)
    for session in manager.store.sessions():
        if session.status is Status.PENDING:
            manager.event(session.id, "Resumed", "The service restarted during launch; resuming it")
            manager.start(session.id)
            repairs.append(f"resumed launch of {session.id}")
    for line in repairs:
        log.warning(line)
    return repairs
