"""Composition root: the one place that wires the concrete adapters to the brain."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import psutil
from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles

from emulator import __version__, labels, naming
from emulator.api import access, errors, portal, skaha
from emulator.api.limits import BodyLimit
from emulator.api.openapi import describe
from emulator.api.origin import OwnPagesOnly
from emulator.core.auth import PROBE_HEADER, Authenticator
from emulator.core.callback import CallbackTokens
from emulator.core.housekeeping import Housekeeper, run_forever
from emulator.core.identity import UsersSource
from emulator.core.models import GIB, HostCapacity
from emulator.core.networks import UserNetworks
from emulator.core.policy import resource_context
from emulator.core.probe import GatewayProbes
from emulator.core.provision import install_session_files
from emulator.core.sessions import SessionManager
from emulator.core.signin import SignIns
from emulator.core.store import Store
from emulator.core.usage import UsageSampler
from emulator.gateway.base import NAME_SERVER_PORT, GatewayTable
from emulator.gateway.caddy import OWN_ANSWER, CaddyGateway
from emulator.gateway.names import SessionNameServer
from emulator.gateway.routes import routes_for
from emulator.profiles import load_profiles
from emulator.runtime import gpus
from emulator.runtime.docker import DockerRuntime
from emulator.runtime.engine import EngineFacts
from emulator.runtime.swarm import SwarmRuntime
from emulator.settings import Settings

log = logging.getLogger("emulator.service")

AVAILABILITY = """<?xml version="1.0" encoding="UTF-8"?>
<vosi:availability xmlns:vosi="http://www.ivoa.net/xml/VOSIAvailability/v1.0">
  <vosi:available>true</vosi:available>
  <vosi:note>skaha-emulator {version} is accepting requests</vosi:note>
</vosi:availability>
"""


def _check_limits(settings: Settings, facts: EngineFacts) -> None:
    """Refuse to serve (EMULATE_REQUIRE_LIMITS) or say so, where the engine cannot hold the sessions' limits."""
    if facts.unenforced_limits(settings.require_limits) is not None:
        log.warning(
            "the sessions' %s limits are not enforced by this engine: %s", facts.limits.named, facts.limits.why_not
        )


def create_app(settings: Settings, api_upstream: str, gateway_url: str) -> FastAPI:
    """`api_upstream`: where the gateway reaches this service; `gateway_url`: where it reaches the gateway."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        loop = asyncio.get_running_loop()
        profiles = load_profiles(settings.profiles_dir)
        users = UsersSource(settings.users_file)
        users.current()  # a broken users file stops the service here, with its reason
        install_session_files(settings, profiles.values())
        gateway = CaddyGateway(settings.admin_socket)
        helper_labels = labels.platform_labels(settings.instance, labels.ROLE_HELPER)
        swarm = settings.orchestrator == "swarm"
        runtime = (
            SwarmRuntime(helper_labels, encrypted=settings.overlay_encrypted, pull_stall=settings.pull_stall_seconds)
            if swarm
            else DockerRuntime(helper_labels, pull_stall=settings.pull_stall_seconds, selinux=settings.selinux)
        )
        _check_limits(settings, runtime.facts())
        nvml = gpus.Nvml()
        found = nvml.open()
        devices = [gpu.uuid for gpu in found]
        gpu_note = nvml.absent_because
        if swarm:  # Swarm hands out the GPUs its machines advertise
            gpu_note = "no machine of the swarm advertises an NVIDIA GPU (dockerd --node-generic-resource)"
            devices = []
        elif devices and (refused := runtime.gpu_access(found)):  # neither the NVIDIA runtime nor CDI takes them
            gpu_note = refused
            log.warning("GPU requests are refused: %s", gpu_note)
            devices = []
        if swarm:  # what a session may ask for: what the largest machine has; what there is: all of them
            nodes = [n for n in await runtime.nodes() if n.state == "ready" and n.available] or await runtime.nodes()
            largest = max(nodes, key=lambda n: (n.memory_bytes, n.cores))
            context = resource_context(int(largest.cores), largest.memory_bytes / GIB, max(n.gpus for n in nodes))
            capacity = HostCapacity(
                cores=int(sum(n.cores for n in nodes)),
                memory_gb=sum(n.memory_bytes for n in nodes) / GIB,
                gpus=sum(n.gpus for n in nodes),
            )
        else:
            capacity = HostCapacity(cores=psutil.cpu_count() or 1, memory_gb=psutil.virtual_memory().total / GIB)
            context = resource_context(capacity.cores, capacity.memory_gb, len(devices))
        uncounted = {p.type for p in profiles.values() if not p.counts_toward_limit}
        batch = {p.type for p in profiles.values() if p.batch}
        store = Store(settings.state_db, uncounted_types=uncounted, batch_types=batch)
        callbacks = CallbackTokens(settings.callback_key)
        auth = Authenticator(users, callbacks, SignIns(settings.signin_key), store)
        sampler = UsageSampler(
            runtime, lambda s: naming.session_container(settings.prefix, s.type, s.id), gpu_meter=nvml.usage
        )
        networks = UserNetworks(runtime, settings)
        manager = SessionManager(
            settings,
            store,
            runtime,
            profiles,
            users,
            callbacks,
            sampler,
            networks,
            context,
            capacity,
            GatewayProbes(gateway_url, OWN_ANSWER, lambda session_id: {PROBE_HEADER: auth.probe_token(session_id)}),
            gpu_devices=devices,
            gpu_note=gpu_note,
        )
        # The gateway asks this service, at its address on the platform network, for sessions' addresses.
        # Not on a swarm: there a task's address is on an overlay of another machine, and the gateway
        # still finds sessions by name through the engine (README, "More than one machine").
        names = SessionNameServer(manager.addresses.lookup)
        name_server = None
        if not swarm:
            host = api_upstream.rsplit(":", 1)[0]
            address = await loop.run_in_executor(None, socket.gethostbyname, host)
            await names.start(address, NAME_SERVER_PORT)
            name_server = f"{address}:{NAME_SERVER_PORT}"
        await gateway.wait_ready()
        routes = routes_for(profiles.values(), settings.prefix, settings.base_url, name_server)
        tls_names = settings.tls_names if settings.tls else None
        table = GatewayTable(
            api_upstream, routes, auth=settings.auth_required, tls_names=tls_names, session_hosts=settings.session_hosts
        )
        keeper = Housekeeper(manager, store, runtime, gateway, table, profiles, settings, networks)
        await keeper.reconcile()
        # Housekeeping runs when the engine reports a container of this instance changing (an exit is
        # seen at once) and otherwise every loop_interval seconds (expiry, retention): idle, it costs
        # next to nothing.
        changed = asyncio.Event()

        def on_change() -> None:  # on the engine watch's thread
            loop.call_soon_threadsafe(changed.set)

        runtime.watch(labels.selector(settings.instance), on_change)
        housekeeping = [
            asyncio.create_task(run_forever(keeper.run_once, settings.loop_interval, "housekeeping", changed)),
        ]
        app.state.manager = manager
        app.state.auth = auth
        app.state.settings = settings
        log.info("skaha-emulator %s serving instance '%s' at %s", __version__, settings.instance, settings.base_url)
        try:
            yield
        finally:
            for task in housekeeping:
                task.cancel()
            await asyncio.gather(*housekeeping, return_exceptions=True)
            names.close()
            runtime.close()  # first: a pull's thread ends now, not when its registry next speaks
            nvml.close()
            await sampler.stop()
            await manager.stop()
            store.close()

    app = FastAPI(title="skaha-emulator", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None)
    errors.install(app)
    app.add_middleware(errors.ContainUnforeseen)  # innermost of ours: it sees what the handlers let through
    app.add_middleware(BodyLimit)
    app.add_middleware(OwnPagesOnly)
    app.include_router(skaha.router)
    app.include_router(access.router)
    app.include_router(portal.router)
    app.mount("/science-portal/static", StaticFiles(directory=Path(__file__).parent / "static"), name="static")

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = describe(get_openapi(title=app.title, version=app.version, routes=app.routes))
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

    @app.get("/skaha/availability")
    async def availability() -> Response:
        return Response(AVAILABILITY.format(version=__version__), media_type="text/xml")

    return app
