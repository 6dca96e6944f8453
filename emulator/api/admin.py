"""The admin API for sessions (the emulator's own; skaha has none): every session and desktop-app of every
user, renew or delete any, delete all of one user's or every session. Admins only, by their own API token
(deps.AdminUser: 403 to anyone else, a session's token included). Each action leaves an audit line.

    GET    /skaha/v1/admin/sessions[?user=&status=&sort=&order=]   JSON: skaha v1's fields and ours
    GET    /skaha/v1/admin/sessions/{ref}[?view=events|logs]
    POST   /skaha/v1/admin/sessions/{ref}  action=renew
    DELETE /skaha/v1/admin/sessions/{ref}
    DELETE /skaha/v1/admin/sessions?user=NAME&confirm=NAME  |  ?all=true&confirm=everything
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import PlainTextResponse, Response

from emulator.api import views
from emulator.api.audit import audited
from emulator.api.deps import AdminUser, Manager, Query, admin_caller
from emulator.core.admin import EVERYTHING, Row, choose, sort_key, status_named
from emulator.core.audit import Value
from emulator.core.models import GIB, Event, Session, User
from emulator.core.policy import shown
from emulator.errors import InvalidRequest

PREFIX = "/skaha/v1/admin"
# The caller is checked before anything else is read (no body for anyone but an admin).
router = APIRouter(prefix=PREFIX, dependencies=[Depends(admin_caller)])


def _json(document: object) -> Response:
    return Response(views.render(document), media_type="application/json")


def event_json(event: Event | None) -> dict[str, Any] | None:
    if event is None:
        return None
    return {"type": event.type, "reason": event.reason, "message": event.message, "time": views.iso(event.last_time)}


def row_json(row: Row) -> dict[str, Any]:
    """skaha v1's session document, then ours: the id the admin routes take, the desktop an app is on, the
    newest event, the figures as numbers (v1 leaves a flexible session's requests out), age, time left, and
    when a request last went through the gateway to it."""
    session, owner = row.session, row.owner
    document = views.session_json(session, owner or User(session.user, -1, -1), row.connect_url, row.usage, "v1")
    if owner is None:  # its user left the users file with their sessions kept: no uid to say
        document.update(runAsUID=views.NONE, runAsGID=views.NONE, supplementalGroups=[])
    r = session.resources
    document.update(
        ref=session.id,
        desktop=session.parent_id,
        latestEvent=event_json(row.latest),
        requested={
            "cpuCores": r.cores_request,
            "cpuCoresLimit": r.cores_limit,
            "ramGB": r.ram_request_gb,
            "ramGBLimit": r.ram_limit_gb,
            "gpus": r.gpus,
        },
        used=None
        if row.usage is None
        else {"cpuCores": round(row.usage.cpu_cores, 3), "ramGB": round(row.usage.memory_bytes / GIB, 3)},
        ageSeconds=row.age_seconds,
        secondsLeft=row.seconds_left,
        lastActivity=views.iso(session.last_activity) if session.last_activity else None,
    )
    return document


def whose(session: Session) -> dict[str, Value]:
    """What an admin action's audit line says of the session it acted on."""
    return {"session": session.id, "user": session.user, "type": session.type.value}


def _deleted(sessions: list[Session]) -> Response:
    return _json({"deleted": [s.id for s in sessions]})


@router.get("/sessions")
async def list_sessions(p: Query, caller: AdminUser, manager: Manager) -> Response:
    descending = (p.get("order") or "asc") == "desc"
    rows = choose(
        manager.admin.rows(), p.get("user"), status_named(p.get("status")), sort_key(p.get("sort")), descending
    )
    return _json([row_json(row) for row in rows])


@router.get("/sessions/{ref}")
async def get_session(ref: str, p: Query, caller: AdminUser, manager: Manager) -> Response:
    view = p.get("view")
    if view == "events":
        return PlainTextResponse(views.events_table(manager.admin.events(ref)))
    if view == "logs":
        return PlainTextResponse(await manager.admin.logs(ref))
    if view is not None:
        raise InvalidRequest(f"unknown view '{shown(view)}': events or logs")
    return _json(row_json(manager.admin.row(ref)))


@router.post("/sessions/{ref}")
async def modify_session(request: Request, ref: str, p: Query, caller: AdminUser, manager: Manager) -> Response:
    with audited(request, "admin-renew", caller.name, session=ref) as line:
        if p.get("action") != "renew":
            raise InvalidRequest("the admin API's only action on a session is action=renew")
        session, expiry = manager.admin.renew(caller, ref)
        line.update(whose(session))
    return _json({"id": session.id, "userid": session.user, "expiryTime": views.iso(expiry)})


@router.delete("/sessions/{ref}")
async def delete_session(request: Request, ref: str, caller: AdminUser, manager: Manager) -> Response:
    with audited(request, "admin-delete", caller.name, session=ref) as line:
        session = await manager.admin.delete(caller, ref)
        line.update(whose(session))
    return _deleted([session])


@router.delete("/sessions")
async def delete_many(request: Request, p: Query, caller: AdminUser, manager: Manager) -> Response:
    user, everyone, typed = p.get("user") or None, p.get("all"), p.get("confirm")
    action, whom = ("admin-delete-all", {}) if user is None else ("admin-delete-user", {"user": user})
    with audited(request, action, caller.name, **whom) as line:
        if everyone is not None and everyone != "true":
            raise InvalidRequest("all=true, or leave it out")
        if (user is None) == (everyone is None):
            raise InvalidRequest(f"say whose: ?user=NAME&confirm=NAME, or ?all=true&confirm={EVERYTHING}")
        if user is not None:
            deleted = await manager.admin.delete_user(caller, user, typed)
        else:
            deleted = await manager.admin.delete_all(caller, typed)
        line["sessions"] = len(deleted)
    return _deleted(deleted)
