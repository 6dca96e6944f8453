"""Composition root: the one place that wires the concrete adapters to the brain."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import psutil
from fastapi import FastAPI
from fastapi.responses import Response

from emulator import __version__, labels
from emulator.api import errors
from emulator.api.skaha import make_router
from emulator.core.identity import UsersSource
from emulator.core.lifecycle import Housekeeper, run_forever
from emulator.core.policy import resource_context
from emulator.core.reconcile import reconcile
from emulator.core.sessions import SessionManager
from emulator.core.store import Store
from emulator.gateway.caddy import CaddyGateway
from emulator.profiles import load_profiles
from emulator.runtime import gpus
from emulator.runtime.docker import DockerRuntime
from emulator.runtime.spec import GIB, skaha_system_dir
from emulator.settings import Settings

log = logging.getLogger("emulator.service")

USAGE_INTERVAL = 5.0  # seconds between samples of the sessions' memory and CPU use

AVAILABILITY = """<?xml version="1.0" encoding="UTF-8"?>
<vosi:availability xmlns:vosi="http://www.ivoa.net/xml/VOSIAvailability/v1.0">
  <vosi:available>true</vosi:available>
  <vosi:note>skaha-emulator {version} is accepting requests</vosi:note>
</vosi:availability>
"""


def admin_socket(settings: Settings) -> Path:
    return settings.state_path / "gateway" / "admin.sock"


def install_launch_scripts(settings: Settings) -> None:
    """Copy profiles/skaha-system to the state folder, which sessions mount at /skaha-system."""
    source = settings.profiles_dir / "skaha-system"
    target = skaha_system_dir(settings)
    # Running sessions have this very folder mounted (and a shell may be reading a script):
    # each file is replaced whole, never rewritten in place, and the folder itself stays.
    target.mkdir(parents=True, exist_ok=True)
    target.chmod(0o755)
    wanted = {path.name for path in source.iterdir() if path.is_file()}
    for name in wanted:
        draft = target / f".{name}.new"
        shutil.copyfile(source / name, draft)
        draft.chmod(0o755)
        os.replace(draft, target / name)
    for stale in target.iterdir():
        if stale.name not in wanted:
            stale.unlink()


def create_app(settings: Settings, api_upstream: str) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        profiles = load_profiles(settings.profiles_dir)
        users = UsersSource(settings.users_file)
        users.current()  # a broken users file stops the service here, with its reason
        install_launch_scripts(settings)
        gateway = CaddyGateway(admin_socket(settings))
        devices = gpus.discover()
        context = resource_context(psutil.cpu_count() or 1, psutil.virtual_memory().total / GIB, len(devices))
        store = Store(settings.state_path / "state.db")
        runtime = DockerRuntime(helper_labels=labels.platform_labels(settings.instance, labels.ROLE_HELPER))
        manager = SessionManager(settings, store, runtime, gateway, profiles, users, context, devices)
        await gateway.wait_ready()
        keeper = Housekeeper(manager, api_upstream)
        await reconcile(keeper)
        housekeeping = [
            asyncio.create_task(run_forever(keeper.run_once, settings.loop_interval, "housekeeping")),
            asyncio.create_task(run_forever(manager.refresh_usage, USAGE_INTERVAL, "usage sampling")),
        ]
        app.state.manager = manager
        log.info("skaha-emulator %s serving instance '%s' at %s", __version__, settings.instance, settings.base_url)
        try:
            yield
        finally:
            for task in housekeeping:
                task.cancel()
            await asyncio.gather(*housekeeping, return_exceptions=True)
            await manager.stop()
            store.close()

    app = FastAPI(title="skaha-emulator", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None)
    errors.install(app)
    for version in ("v0", "v1"):
        app.include_router(make_router(version), prefix=f"/skaha/{version}")

    @app.get("/skaha/availability")
    async def availability() -> Response:
        return Response(AVAILABILITY.format(version=__version__), media_type="text/xml")

    return app
