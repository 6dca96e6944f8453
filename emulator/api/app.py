"""Composition root: the one place that wires the concrete adapters to the brain."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles

from emulator import __version__, labels, naming
from emulator.api import ac, access, admin, admin_page, errors, metrics, notices, portal, skaha, usage, vospace
from emulator.api.audit import PlatformAudit
from emulator.api.host import host_facts
from emulator.api.limits import BodyLimit
from emulator.api.openapi import describe
from emulator.api.origin import OwnPagesOnly
from emulator.core.activity import READ_INTERVAL_SECONDS, ActivityTracker
from emulator.core.addresses import SessionAddresses
from emulator.core.audit import AuditLog
from emulator.core.auth import PROBE_HEADER, Authenticator
from emulator.core.bringup import SessionServices
from emulator.core.callback import CallbackTokens
from emulator.core.endings import Endings
from emulator.core.housekeeping import Housekeeper, run_forever
from emulator.core.identity import UsersSource
from emulator.core.idle import GatewayConnections, IdleCuller, IdleRule
from emulator.core.networks import UserNetworks
from emulator.core.probe import GatewayProbes
from emulator.core.provision import install_session_files
from emulator.core.sessions import SessionManager
from emulator.core.signin import SignIns
from emulator.core.store import Store
from emulator.core.usage import UsageSampler
from emulator.gateway.access_log import CaddyAccessLog
from emulator.gateway.base import NAME_SERVER_PORT, GatewayTable
from emulator.gateway.caddy import OWN_ANSWER, CaddyGateway
from emulator.gateway.names import SessionNameServer
from emulator.gateway.routes import routes_for
from emulator.profiles import Profile, load_profiles
from emulator.runtime import gpus
from emulator.runtime.docker import DockerRuntime
from emulator.runtime.engine import EngineFacts
from emulator.runtime.swarm import SwarmRuntime
from emulator.settings import Settings

log = logging.getLogger(__name__)

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


def _runtime(settings: Settings) -> DockerRuntime:
    """The engine's adapter: Swarm's across a swarm's machines, else one engine's."""
    helper_labels = labels.platform_labels(settings.instance, labels.ROLE_HELPER)
    runtime = (
        SwarmRuntime(helper_labels, encrypted=settings.overlay_encrypted, pull_stall=settings.pull_stall_seconds)
        if settings.orchestrator == "swarm"
        else DockerRuntime(helper_labels, pull_stall=settings.pull_stall_seconds, selinux=settings.selinux)
    )
    _check_limits(settings, runtime.facts())
    return runtime


def _store(settings: Settings, profiles: dict[str, Profile]) -> Store:
    uncounted = {p.type for p in profiles.values() if not p.counts_toward_limit}
    batch = {p.type for p in profiles.values() if p.batch}
    queue = {p.type for p in profiles.values() if p.queue}
    return Store(settings.layout.state_db, uncounted_types=uncounted, batch_types=batch, queue_types=queue)


def _services(
    settings: Settings,
    runtime: DockerRuntime,
    store: Store,
    callbacks: CallbackTokens,
    auth: Authenticator,
    nvml: gpus.Nvml,
    gateway_url: str,
) -> SessionServices:
    """What sessions use besides the store and the engine (`gateway_url`: where the probes reach the gateway)."""
    return SessionServices(
        callbacks=callbacks,
        usage=UsageSampler(
            runtime, lambda s: naming.session_container(settings.prefix, s.type, s.id), gpu_meter=nvml.usage
        ),
        networks=UserNetworks(runtime, settings),
        probes=GatewayProbes(gateway_url, OWN_ANSWER, lambda session_id: {PROBE_HEADER: auth.probe_token(session_id)}),
        addresses=SessionAddresses(store, runtime, settings.prefix),
    )


async def _name_server(
    settings: Settings, api_upstream: str, addresses: SessionAddresses
) -> tuple[SessionNameServer, str | None]:
    """The gateway asks this service, at its address on the platform network, for sessions' addresses.
    Not on a swarm: there a task's address is on an overlay of another machine, and the gateway still
    finds sessions by name through the engine (README, "More than one machine"). The server, and where it
    listens (None: nowhere)."""
    names = SessionNameServer(addresses.lookup)
    if settings.orchestrator == "swarm":
        return names, None
    host = api_upstream.rsplit(":", 1)[0]
    address = await asyncio.get_running_loop().run_in_executor(None, socket.gethostbyname, host)
    await names.start(address, NAME_SERVER_PORT)
    return names, f"{address}:{NAME_SERVER_PORT}"


def _table(
    settings: Settings, profiles: dict[str, Profile], api_upstream: str, name_server: str | None
) -> GatewayTable:
    routes = routes_for(profiles.values(), settings.prefix, settings.base_url, name_server)
    tls_names = settings.tls_names if settings.tls else None
    return GatewayTable(
        api_upstream,
        routes,
        auth=settings.auth_required,
        tls_names=tls_names,
        session_hosts=settings.session_hosts,
        access_log=True,
    )


def _keep_house(settings: Settings, runtime: DockerRuntime, keeper: Housekeeper) -> list[asyncio.Task[None]]:
    """Housekeeping runs when the engine reports a container of this instance changing (an exit is
    seen at once) and otherwise every loop_interval seconds (expiry, retention): idle, it costs
    next to nothing."""
    loop = asyncio.get_running_loop()
    changed = asyncio.Event()

    def on_change() -> None:  # on the engine watch's thread
        loop.call_soon_threadsafe(changed.set)

    runtime.watch(labels.selector(settings.instance), on_change)
    return [asyncio.create_task(run_forever(keeper.run_once, settings.loop_interval, "housekeeping", changed))]


def _observe(app: FastAPI, manager: SessionManager, audit: AuditLog) -> None:
    """The audit log and the metrics hear what the sessions do (failures, pulls, expiries) from the start."""
    app.state.audit = audit
    figures: metrics.Metrics = app.state.metrics
    figures.follow(manager)
    manager.record.observers.add(figures)
    manager.record.observers.add(PlatformAudit(audit))


def _watch_activity(
    settings: Settings,
    manager: SessionManager,
    store: Store,
    profiles: dict[str, Profile],
    services: SessionServices,
    runtime: DockerRuntime,
    access_log: CaddyAccessLog,
) -> list[asyncio.Task[None]]:
    """Sessions' last activity, read from the gateway's access log every few seconds; and, with
    EMULATE_IDLE_CULL_HOURS, idle culling every loop_interval."""
    tracker = ActivityTracker(store, access_log)
    reading = run_forever(tracker.run_once, READ_INTERVAL_SECONDS, "reading the gateway's access log")
    tasks = [asyncio.create_task(reading)]
    rule = IdleRule.from_hours(settings.idle_cull_hours)
    if rule is not None:
        gateway = naming.gateway_container(settings.prefix)
        connections = GatewayConnections(runtime, services.addresses, gateway, manager.record.container_name)
        ending = Endings(store, runtime, profiles, manager.record)  # a culled session ends as one the platform stops
        culler = IdleCuller(rule, manager, store, profiles, tracker, connections, ending)
        tasks.append(asyncio.create_task(run_forever(culler.run_once, settings.loop_interval, "idle culling")))
    return tasks


def create_app(settings: Settings, api_upstream: str, gateway_url: str) -> FastAPI:
    """`api_upstream`: where the gateway reaches this service; `gateway_url`: where it reaches the gateway."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        profiles = load_profiles(settings.profiles_dir)
        users = UsersSource(settings.layout.users_file)
        users.current()  # a broken users file stops the service here, with its reason
        install_session_files(settings, profiles.values())
        gateway = CaddyGateway(settings.layout.admin_socket)
        runtime = _runtime(settings)
        nvml = gpus.Nvml()
        host = await host_facts(settings, runtime, nvml)
        store = _store(settings, profiles)
        callbacks = CallbackTokens(settings.layout.callback_key)
        auth = Authenticator(users, callbacks, SignIns(settings.layout.signin_key), store)
        services = _services(settings, runtime, store, callbacks, auth, nvml, gateway_url)
        manager = SessionManager(settings, store, runtime, profiles, users, host, services)
        audit = AuditLog(settings.layout.audit_log)
        _observe(app, manager, audit)
        names, name_server = await _name_server(settings, api_upstream, services.addresses)
        await gateway.wait_ready()
        table = _table(settings, profiles, api_upstream, name_server)
        keeper = Housekeeper(manager, store, runtime, gateway, table, profiles, settings, services.networks)
        access_log = CaddyAccessLog(settings.layout.access_log)  # made private before the gateway's load opens it
        await keeper.reconcile()
        housekeeping = _keep_house(settings, runtime, keeper)
        housekeeping += _watch_activity(settings, manager, store, profiles, services, runtime, access_log)
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
            access_log.close()
            runtime.close()  # first: a pull's thread ends now, not when its registry next speaks
            nvml.close()
            await services.usage.stop()
            await manager.stop()
            store.close()
            audit.close()

    app = FastAPI(title="skaha-emulator", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None)
    _install(app)
    return app


def _install(app: FastAPI) -> None:
    """The service's middleware, routes and OpenAPI document."""
    errors.install(app)
    app.add_middleware(errors.ContainUnforeseen)  # innermost of ours: it sees what the handlers let through
    app.add_middleware(BodyLimit)
    app.add_middleware(OwnPagesOnly)
    app.state.metrics = figures = metrics.Metrics()  # the app's own registry
    app.add_middleware(metrics.RequestTimer, metrics=figures)  # outermost: it times all the others too
    app.include_router(skaha.router)
    app.include_router(notices.router)
    app.include_router(usage.router)
    app.include_router(metrics.router)
    app.include_router(access.router)
    app.include_router(ac.router)
    app.include_router(portal.router)
    app.include_router(admin.router)
    app.include_router(admin_page.router)
    app.include_router(vospace.router)
    app.mount("/science-portal/static", StaticFiles(directory=Path(__file__).parent / "static"), name="static")

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = describe(get_openapi(title=app.title, version=app.version, routes=app.routes))
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

    @app.get("/skaha/availability")
    async def availability() -> Response:
        return Response(AVAILABILITY.format(version=__version__), media_type="text/xml")
