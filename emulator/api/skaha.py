"""skaha's endpoints, served identically under /skaha/v0 and /skaha/v1 (v1 differs only in JSON details)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from functools import partial

from fastapi import APIRouter, Depends, Request
from fastapi.responses import PlainTextResponse, Response

from emulator.api import host, views
from emulator.api.audit import audited, launch_audited
from emulator.api.deps import CurrentUser, Manager, Query, Version, api_version, by_session, caller
from emulator.api.metrics import launch_counted
from emulator.core.models import AppRequest, LaunchRequest, Session, Status, User
from emulator.core.sessions import SessionManager
from emulator.errors import InvalidRequest
from emulator.session_types import SESSION_TYPES

# The version is checked first (so /skaha/v2/... is a 404 whoever asks), then who is asking: no
# body is read for a caller without a valid token.
router = APIRouter(prefix="/skaha/{version}", dependencies=[Depends(api_version), Depends(caller)])


def _json(document: object) -> Response:
    return Response(views.render(document), media_type="application/json")


def _text(body: str) -> PlainTextResponse:
    return PlainTextResponse(body)


# Our own header on session answers (skaha's JSON stays skaha's): the limits this engine does not enforce,
# so `emulate ps` can mark the requested figures instead of promising them.
UNENFORCED_LIMITS = "x-emulator-limits-not-enforced"
# And where the engine's RAM in use counts the page cache (no breakdown to subtract): it reads high.
RAM_COUNTS_CACHE = "x-emulator-ram-includes-cache"


def _marked(response: Response, manager: SessionManager) -> Response:
    missing = manager.limits.missing
    if missing:
        response.headers[UNENFORCED_LIMITS] = ", ".join(missing)
    if manager.ram_counts_cache:
        response.headers[RAM_COUNTS_CACHE] = "true"
    return response


def _document(
    manager: SessionManager, user: User, session: Session, version: str, ahead: dict[str, int]
) -> dict[str, object]:
    """`ahead`: the waiting jobs' places in the queue (manager.jobs_ahead)."""
    usage = manager.usage(session)
    return views.session_json(session, user, manager.connect_url(session), usage, version, ahead.get(session.id))


def _documents(manager: SessionManager, user: User, sessions: list[Session], version: str) -> Response:
    ahead = manager.jobs_ahead() if any(s.queued_at for s in sessions) else {}
    return _marked(_json([_document(manager, user, s, version, ahead) for s in sessions]), manager)


def _word(version: str) -> Callable[[Status], str]:
    """How this API version names a status (v1 says Completed for Succeeded)."""
    return partial(views.status_word, version=version)


@router.get("/session")
async def list_sessions(version: Version, p: Query, user: CurrentUser, manager: Manager) -> Response:
    view = p.get("view")
    if view == "stats":
        # The machine's own figures mean something where sessions run on it, not across a swarm.
        now = None if manager.distributed else await asyncio.to_thread(host.usage_now)
        return _json(views.stats_json(manager.stats(), now, await manager.nodes(), manager.limits))
    if view == "all":
        everyone = manager.sessions(None, p.get("type"), p.get("status"), _word(version))
        return _json([views.public_json(s, version) for s in everyone])
    return _documents(manager, user, manager.sessions(user, p.get("type"), p.get("status"), _word(version)), version)


REGISTRY_AUTH = "x-skaha-registry-auth"


@router.post("/session")
async def launch(http: Request, p: Query, user: CurrentUser, manager: Manager) -> Response:
    mounts = p.getlist("mount")
    wanted = LaunchRequest(
        name=p.get("name"),
        image=p.get("image"),
        type=p.get("type"),
        cores=p.get("cores"),
        ram=p.get("ram"),
        gpus=p.get("gpus"),
        cmd=p.get("cmd"),
        args=p.get("args"),
        env=p.getlist("env"),
        fault=p.get("fault"),  # the emulator's own (EMULATE_FAULTS=true; refused otherwise)
        mounts=mounts,  # the emulator's own (`emulate dev --mount`): host folders, where allowed
        by_session=bool(mounts) and by_session(http),  # only a mount asks whose token it is (a second look-up)
        registry_auth=http.headers.get(REGISTRY_AUTH),
    )
    with launch_counted(http, wanted.type), launch_audited(http, user, wanted) as line:
        line["session"] = session_id = await manager.launch(user, wanted)
    return _text(f"{session_id}\n")


@router.delete("/session")
async def delete_all(user: CurrentUser) -> Response:
    raise InvalidRequest("Cannot kill all sessions.")


@router.get("/session/{session_id}")
async def get_session(session_id: str, version: Version, p: Query, user: CurrentUser, manager: Manager) -> Response:
    view = p.get("view")
    if view == "logs":
        return _text(await manager.logs(user, session_id))
    if view == "events":
        return _text(views.events_table(manager.events(user, session_id)))
    if view == "pull":
        return _json(manager.pull_progress(user, session_id) or {})
    session = manager.get(user, session_id)
    ahead = manager.jobs_ahead() if session.queued_at else {}
    return _marked(_json(_document(manager, user, session, version, ahead)), manager)


SNAPSHOT = "snapshot"  # the emulator's own action: the session saved as an image (core/snapshots.py)


@router.post("/session/{session_id}")
async def modify_session(request: Request, session_id: str, p: Query, user: CurrentUser, manager: Manager) -> Response:
    if p.get("action") == SNAPSHOT:
        with audited(request, "snapshot", user.name, session=session_id) as line:
            line["image"] = name = await manager.snapshot(user, session_id, p.get("tag"))
        return _text(f"{name}\n")
    with audited(request, "renew", user.name, session=session_id):
        await manager.renew(user, session_id, p.get("action"))
    return Response(status_code=200)


@router.delete("/session/{session_id}")
async def delete_session(request: Request, session_id: str, user: CurrentUser, manager: Manager) -> Response:
    with audited(request, "delete", user.name, session=session_id):
        await manager.delete(user, session_id)
    return Response(status_code=200)


@router.post("/session/{session_id}/app")
async def attach_app(request: Request, session_id: str, p: Query, user: CurrentUser, manager: Manager) -> Response:
    registry_auth = request.headers.get(REGISTRY_AUTH)
    wanted = AppRequest(p.get("image"), p.get("cores"), p.get("ram"), registry_auth)
    withheld = [registry_auth] if registry_auth else []
    with audited(request, "app-attach", user.name, withheld, session=session_id, image=wanted.image) as line:
        line["app"] = app_id = await manager.attach_app(user, session_id, wanted)
    return _text(f"{app_id}\n")


@router.get("/session/{session_id}/app")
async def list_apps(session_id: str, version: Version, p: Query, user: CurrentUser, manager: Manager) -> Response:
    return _documents(manager, user, manager.apps(user, p.get("status"), _word(version)), version)


@router.get("/session/{session_id}/app/{app_id}")
async def get_app(session_id: str, app_id: str, version: Version, user: CurrentUser, manager: Manager) -> Response:
    app = manager.get_app(user, session_id, app_id)
    return _json(views.session_json(app, user, manager.connect_url(app), manager.usage(app), version))


@router.delete("/session/{session_id}/app/{app_id}")
async def delete_app(request: Request, session_id: str, app_id: str, user: CurrentUser, manager: Manager) -> Response:
    with audited(request, "app-delete", user.name, session=session_id, app=app_id):
        await manager.delete_app(user, session_id, app_id)
    return Response(status_code=200)


async def deeper(session_id: str, rest: str, request: Request, user: CurrentUser) -> Response:
    raise InvalidRequest(f"Invalid request: {request.url.path}")


for method in ("GET", "POST", "DELETE"):  # one route each, so each has an OpenAPI operation of its own
    router.add_api_route(
        "/session/{session_id}/{rest:path}", deeper, methods=[method], operation_id=f"deeper_{method.lower()}"
    )


@router.get("/image")
async def images(p: Query, user: CurrentUser, manager: Manager) -> Response:
    wanted = p.get("type")
    if wanted is not None and wanted not in SESSION_TYPES:
        raise InvalidRequest(f"unknown type: {wanted}")
    return _json([views.catalogue_json(entry) for entry in await manager.catalogue(user, wanted)])


@router.get("/context")
async def context(user: CurrentUser, manager: Manager) -> Response:
    return _json(manager.context)


@router.get("/repository")
async def repository(user: CurrentUser, manager: Manager) -> Response:
    return _json(manager.repositories)
