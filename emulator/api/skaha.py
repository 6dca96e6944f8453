"""skaha's endpoints, served identically under /skaha/v0 and /skaha/v1 (v1 differs only in JSON details)."""

from __future__ import annotations

from typing import Any

import psutil
from fastapi import APIRouter, Depends, Request
from fastapi.responses import PlainTextResponse, Response

from emulator import labels
from emulator.api import views
from emulator.api.deps import Params, caller, manager, params
from emulator.core.models import Session, Status, User
from emulator.core.sessions import LaunchRequest, SessionManager
from emulator.errors import InvalidRequest
from emulator.profiles import SESSION_TYPES
from emulator.runtime.base import Usage
from emulator.runtime.spec import GIB


def _json(document: object) -> Response:
    return Response(views.render(document), media_type="application/json")


def _text(body: str) -> PlainTextResponse:
    return PlainTextResponse(body)


async def _session_documents(
    m: SessionManager, user: User, sessions: list[Session], version: str
) -> list[dict[str, Any]]:
    def usage(session: Session) -> Usage | None:
        return m.usage.get(m.container_name(session)) if session.status is Status.RUNNING else None

    return [views.session_json(s, user, m.connect_url(s), usage(s), version) for s in sessions]


def _stats(m: SessionManager) -> dict[str, Any]:
    sessions = [s for s in m.store.sessions() if s.status is Status.RUNNING]
    cores = psutil.cpu_count() or 1
    memory_gb = psutil.virtual_memory().total / GIB
    requested_cores = sum(s.resources.cores_request for s in sessions)
    requested_ram = sum(s.resources.ram_request_gb for s in sessions)
    return {
        "instances": {
            "session": sum(s.type not in ("headless", "desktop-app") for s in sessions),
            "desktopApp": sum(s.type == "desktop-app" for s in sessions),
            "headless": sum(s.type == "headless" for s in sessions),
            "total": len(sessions),
        },
        "cores": {
            "requestedCPUCores": requested_cores,
            "cpuCoresAvailable": float(cores),
            "maxCPUCores": {"cpuCores": float(cores), "withRam": f"{int(memory_gb)}G"},
        },
        "ram": {
            "requestedRAM": f"{views.number(requested_ram)}G",
            "ramAvailable": f"{int(memory_gb)}G",
            "maxRAM": {"ram": f"{int(memory_gb)}G", "withCPUCores": float(cores)},
        },
    }


def make_router(version: str) -> APIRouter:
    router = APIRouter()

    @router.get("/session")
    async def list_sessions(
        p: Params = Depends(params), user: User = Depends(caller), m: SessionManager = Depends(manager)
    ) -> Response:
        view = p.get("view")
        if view == "stats":
            return _json(_stats(m))

        def word(status: Status) -> str:
            return views.status_word(status, version)

        if view == "all":
            everyone = m.sessions(None, p.get("type"), p.get("status"), word)
            return _json([views.public_json(s, version) for s in everyone])
        sessions = m.sessions(user, p.get("type"), p.get("status"), word)
        return _json(await _session_documents(m, user, sessions, version))

    @router.post("/session")
    async def launch(
        p: Params = Depends(params), user: User = Depends(caller), m: SessionManager = Depends(manager)
    ) -> Response:
        request = LaunchRequest(
            name=p.get("name"),
            image=p.get("image"),
            type=p.get("type"),
            cores=p.get("cores"),
            ram=p.get("ram"),
            gpus=p.get("gpus"),
            cmd=p.get("cmd"),
            args=p.get("args"),
            env=p.getlist("env"),
        )
        return _text(f"{await m.launch(user, request)}\n")

    @router.delete("/session")
    async def delete_all(user: User = Depends(caller)) -> Response:
        raise InvalidRequest("Cannot kill all sessions.")

    @router.get("/session/{session_id}")
    async def get_session(
        session_id: str,
        p: Params = Depends(params),
        user: User = Depends(caller),
        m: SessionManager = Depends(manager),
    ) -> Response:
        view = p.get("view")
        if view == "logs":
            return _text(await m.logs(user, session_id))
        if view == "events":
            return _text(views.events_table(m.events(user, session_id)))
        session = m.owned(user, session_id)
        (document,) = await _session_documents(m, user, [session], version)
        return _json(document)

    @router.post("/session/{session_id}")
    async def modify_session(
        session_id: str,
        p: Params = Depends(params),
        user: User = Depends(caller),
        m: SessionManager = Depends(manager),
    ) -> Response:
        await m.renew(user, session_id, p.get("action"))
        return Response(status_code=200)

    @router.delete("/session/{session_id}")
    async def delete_session(
        session_id: str, user: User = Depends(caller), m: SessionManager = Depends(manager)
    ) -> Response:
        await m.delete(user, session_id)
        return Response(status_code=200)

    @router.post("/session/{session_id}/app")
    async def attach_app(
        session_id: str, p: Params = Depends(params), user: User = Depends(caller), m: SessionManager = Depends(manager)
    ) -> Response:
        app_id = await m.apps.launch(user, session_id, p.get("image"), p.get("cores"), p.get("ram"))
        return _text(f"{app_id}\n")

    @router.get("/session/{session_id}/app")
    async def list_apps(
        session_id: str, p: Params = Depends(params), user: User = Depends(caller), m: SessionManager = Depends(manager)
    ) -> Response:
        def word(status: Status) -> str:
            return views.status_word(status, version)

        return _json(await _session_documents(m, user, m.apps.list(user, p.get("status"), word), version))

    @router.get("/session/{session_id}/app/{app_id}")
    async def get_app(
        session_id: str, app_id: str, user: User = Depends(caller), m: SessionManager = Depends(manager)
    ) -> Response:
        (document,) = await _session_documents(m, user, [m.apps.get(user, session_id, app_id)], version)
        return _json(document)

    @router.delete("/session/{session_id}/app/{app_id}")
    async def delete_app(
        session_id: str, app_id: str, user: User = Depends(caller), m: SessionManager = Depends(manager)
    ) -> Response:
        await m.apps.delete(user, session_id, app_id)
        return Response(status_code=200)

    @router.api_route("/session/{session_id}/{rest:path}", methods=["GET", "POST", "DELETE"])
    async def deeper(session_id: str, rest: str, request: Request, user: User = Depends(caller)) -> Response:
        raise InvalidRequest(f"Invalid request: {request.url.path}")

    @router.get("/image")
    async def images(
        p: Params = Depends(params), user: User = Depends(caller), m: SessionManager = Depends(manager)
    ) -> Response:
        wanted = p.get("type")
        if wanted is not None and wanted not in SESSION_TYPES:
            raise InvalidRequest(f"unknown type: {wanted}")
        listing: list[dict[str, Any]] = []
        for image in await m.runtime.images():
            types = labels.image_session_types(image.labels)
            if types is None or not image.tags:
                continue  # like Harbor: unlabelled artifacts are invisible
            if wanted is None or wanted in types:
                listing.append({"id": image.tags[0], "types": types, "digest": image.digest})
        return _json(sorted(listing, key=lambda entry: str(entry["id"])))

    @router.get("/context")
    async def context(user: User = Depends(caller), m: SessionManager = Depends(manager)) -> Response:
        return _json(m.context)

    @router.get("/repository")
    async def repository(user: User = Depends(caller), m: SessionManager = Depends(manager)) -> Response:
        return _json(m.settings.repositories)

    return router
