"""Where the gateway finds a session: its container's address on its owner's network, by container name.

The gateway's name server (gateway/names.py) asks here for every session name it is asked. The answer is
the address the engine gave that container, remembered when the bring-up saw it; a session the service
has not seen started since it (re)started is read from the engine once. A name is answered only while
its row is live, Pending or Running, so a deleted session's name stops answering with its row.
"""

from __future__ import annotations

from emulator import naming
from emulator.core.models import Status
from emulator.core.store import Store
from emulator.errors import EmulatorError
from emulator.runtime.base import Runtime


class SessionAddresses:
    def __init__(self, store: Store, runtime: Runtime, prefix: str) -> None:
        self._store = store
        self._runtime = runtime
        self._prefix = prefix
        self._known: dict[str, str] = {}  # container name -> address

    def remember(self, container: str, address: str | None) -> None:
        if address:
            self._known[container] = address

    async def lookup(self, container: str) -> str | None:
        """The address of the live session whose container is named `container`, or None."""
        session_id = container.rsplit("-", 1)[-1]
        session = self._store.get(session_id)
        if session is None or not session.status.live:
            self._known.pop(container, None)
            return None
        if naming.session_container(self._prefix, session.type, session.id) != container:
            return None  # a name this instance never gives a session
        address = self._known.get(container)
        if address is None and session.status is Status.RUNNING:  # started before this service did
            try:
                state = await self._runtime.state(container)
            except EmulatorError:
                return None
            if state is not None and state.state == "running":
                self.remember(container, state.address)
                address = state.address
        return address
