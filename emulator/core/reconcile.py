"""Start-up reconciliation: SQLite rows <-> labelled containers, and the gateway's table.

Docker labels are the lasting truth about what exists; rows say what should. A
session container of this instance with no row is an orphan and is removed, as is
any helper container a crash left; the gateway gets its whole table anew. Pending
rows are resumed by the first housekeeping pass (bring-up is idempotent).
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
    instance = manager.settings.instance
    repairs: list[str] = []
    for container in await manager.runtime.containers(labels.selector(instance, labels.ROLE_SESSION)):
        if manager.store.get(labels.row_of(container.labels)) is None:
            await manager.runtime.remove(container.name)
            repairs.append(f"removed orphan container {container.name}")
    for container in await manager.runtime.containers(labels.selector(instance, labels.ROLE_HELPER)):
        await manager.runtime.remove(container.name)
    await keeper.sync_gateway(force=True)
    for session in manager.store.sessions():
        if session.status is Status.PENDING:
            manager.event(session.id, "Resumed", "The service restarted during launch; resuming it")
            repairs.append(f"resuming launch of {session.id}")
    for line in repairs:
        log.warning(line)
    return repairs
