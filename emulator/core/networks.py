"""One network per user: a user's sessions (and their desktop-apps) share it with the gateway only.

A user's network lives as long as the user (made at their first launch, about 0.1 s; removed when
they leave the users file, at the service's next start, or by `emulate down --remove-sessions`), so
later launches pay nothing for it.

Sessions of different users cannot reach each other at all: they share no network, Docker's
DNS names only the containers of a shared network (so nothing of another user's is found by
name or by reverse lookup), and the engine drops traffic between bridges. The service stays on
the platform network, which no session joins. Each user network gets a small subnet of its own
from `settings.user_subnets` (Docker's default pools hold only about thirty networks), avoiding
every subnet the engine already uses.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections.abc import Callable
from functools import partial

from emulator import labels, naming
from emulator.errors import EmulatorError, SubnetTaken
from emulator.runtime.base import NetworkInfo, Runtime
from emulator.settings import Settings

log = logging.getLogger(__name__)


def _known(user: str, known_users: Callable[[], set[str]]) -> bool:
    return user in known_users()


def free_subnet(pool: str, prefix_length: int, taken: list[str]) -> str | None:
    """The first subnet of that size in `pool` that overlaps none of `taken`."""
    used = [ipaddress.ip_network(subnet, strict=False) for subnet in taken]
    for candidate in ipaddress.ip_network(pool).subnets(new_prefix=prefix_length):
        if not any(candidate.overlaps(other) for other in used):
            return str(candidate)
    return None


# Some engines also refuse subnets the host routes (another engine's bridges, say): more tries than one race needs.
OVERLAP_RETRIES = 8


class UserNetworks:
    def __init__(self, runtime: Runtime, settings: Settings) -> None:
        self._runtime = runtime
        self._settings = settings
        self._gateway = naming.gateway_container(settings.prefix)
        self._ready: set[str] = set()  # networks made and joined by the gateway since the service started
        self._lock = asyncio.Lock()  # one subnet choice at a time

    def name(self, user: str) -> str:
        return naming.user_network(self._settings.prefix, user)

    async def ensure(self, user: str) -> str:
        """The user's network, made if missing and joined by the gateway; returns its name.

        A gateway that cannot join right now (it is being recreated) is not the launch's failure:
        the session comes up unreachable and `rejoin`, run whenever the gateway is reloaded, joins it.
        """
        network = self.name(user)
        async with self._lock:
            if network in self._ready:
                return network
            existing = await self._runtime.networks()
            if network not in {info.name for info in existing}:
                await self._create(network, user, existing)
            await self._join(network)
        return network

    async def _join(self, network: str) -> None:
        try:
            await self._runtime.connect(network, self._gateway)
        except EmulatorError as exc:
            log.warning("the gateway could not join %s yet (%s); it will when it is reloaded", network, exc.message)
            return
        self._ready.add(network)

    async def _create(self, network: str, user: str, existing: list[NetworkInfo]) -> None:
        wanted = {
            **labels.platform_labels(self._settings.instance, labels.ROLE_USER_NETWORK),
            labels.NETWORK_USER: user,
        }
        refused: list[str] = []
        for attempt in range(OVERLAP_RETRIES):
            taken = [subnet for info in existing for subnet in info.subnets] + refused
            subnet = free_subnet(self._settings.user_subnets, self._settings.user_subnet_prefix, taken)
            if subnet is None:
                raise EmulatorError(
                    f"no free subnet left in {self._settings.user_subnets} for user {user}'s network; "
                    "set EMULATE_USER_SUBNETS to a larger private range"
                )
            try:
                await self._runtime.create_network(network, wanted, subnet)
            except SubnetTaken:
                # Taken meanwhile by another instance on this engine, or used by the host's routes: look again and
                # take another.
                if attempt == OVERLAP_RETRIES - 1:
                    raise
                existing = await self._runtime.networks()
                refused.append(subnet)
                continue
            log.info("made network %s (%s) for user %s", network, subnet, user)
            return

    async def rejoin(self) -> None:
        """Attach the gateway to every user network again (it was recreated, or the engine restarted)."""
        async with self._lock:
            self._ready.clear()
            for info in await self._mine():
                await self._join(info.name)

    async def release(self, user: str, still_used: Callable[[], bool]) -> None:
        """Remove the user's network unless `still_used()` (asked under the lock, so a launch admitted
        meanwhile keeps it). A removal the engine refuses is logged and tried again at the next sweep."""
        async with self._lock:
            if still_used():
                return
            network = self.name(user)
            self._ready.discard(network)
            try:
                await self._runtime.remove_network(network, detach=[self._gateway])
            except EmulatorError as exc:
                log.warning("could not remove %s yet: %s", network, exc.message)

    async def sweep(self, known_users: Callable[[], set[str]]) -> None:
        """Remove the networks of users the platform no longer knows (gone from the users file, no session)."""
        for info in await self._mine():
            user = info.labels.get(labels.NETWORK_USER, "")
            await self.release(user, partial(_known, user, known_users))

    async def _mine(self) -> list[NetworkInfo]:
        instance = self._settings.instance
        return [
            info
            for info in await self._runtime.networks()
            if info.labels.get(labels.INSTANCE) == instance and info.labels.get(labels.ROLE) == labels.ROLE_USER_NETWORK
        ]
