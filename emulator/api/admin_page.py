"""The portal's admin page: every session and desktop-app of every user, live, with the platform's load, each
user's share of it and what ended sessions used; Renew, Delete, events and logs on any row, and the bulk
deletes behind a typed confirmation. Admins only: anyone else signed in gets 403 on every page, fragment and
post; a browser not signed in is sent to sign in. Server-rendered like the dashboard (its first answer holds
every row); admin.js refreshes the rows and acts without leaving the page, and everything works without it
(the filters and the sort are query parameters, the actions plain forms, a delete confirmed on a page of its own).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response

from emulator.api import views
from emulator.api.admin import whose
from emulator.api.audit import audited
from emulator.api.deps import ADMINS_ONLY, Manager
from emulator.api.pages import auth_of, check_form, done, form_token, portal_cookie, refused, signed_in, templates
from emulator.core import accounting
from emulator.core.admin import EVERYTHING, SORT_KEYS, Row, choose, shares, sort_key, status_named
from emulator.core.models import GIB, Status, User
from emulator.core.sessions import SessionManager
from emulator.errors import EmulatorError, Forbidden, InvalidRequest

PAGE = "/science-portal/admin"
router = APIRouter(prefix=PAGE, include_in_schema=False)
# The columns a header sorts by, with the words they show.
COLUMNS = {key: key.capitalize() for key in SORT_KEYS} | {
    "left": "Time left",
    "cores": "CPU cores",
    "ram": "RAM",
    "activity": "Last activity",
}


def admin_viewer(request: Request) -> User:
    """The signed-in admin (401 not signed in, 403 signed in but no admin)."""
    user = signed_in(request)
    if not user.admin:
        raise Forbidden(ADMINS_ONLY)
    return user


AdminViewer = Annotated[User, Depends(admin_viewer)]


def _figures(request: float, limit: float, fixed: bool, used: float | None, unit: str) -> str:
    asked = f"{views.number(request)}{unit}" + ("" if fixed else f" (up to {views.number(limit)})")
    return f"{used:.2f}{unit} of {asked}" if used is not None else f"– of {asked}"


def row_view(row: Row) -> dict[str, Any]:
    """A row of the table, in words."""
    s, r, usage, latest = row.session, row.session.resources, row.usage, row.latest
    return {
        "ref": s.id,
        "name": s.name if s.parent_id is None else f"app {s.app_id}",
        "desktop": s.parent_id or "",
        "type": s.type.value,
        "user": s.user,
        "status": s.status.value,
        "live": s.status.live,
        "event": f"{latest.reason}: {latest.message}" if latest else "",
        "warning": latest is not None and latest.type == "Warning",
        "image": s.image,
        "age": views.duration(row.age_seconds),
        "left": views.duration(row.seconds_left) if s.status.live else "–",
        "expiring": s.status.live and row.seconds_left < 6 * 3600,
        "cores": _figures(r.cores_request, r.cores_limit, r.fixed, usage.cpu_cores if usage else None, ""),
        "ram": _figures(r.ram_request_gb, r.ram_limit_gb, r.fixed, usage.memory_bytes / GIB if usage else None, " GB"),
        "activity": views.ago(s.last_activity, row.now),
        "activity_time": views.when(s.last_activity) if s.last_activity else "",
    }


def _load(manager: SessionManager, rows: list[Row]) -> dict[str, Any]:
    """The platform's load (what running sessions asked for against the machine) and each user's share."""
    stats = manager.stats()
    cores, memory = stats.capacity.cores, stats.capacity.memory_gb
    return {
        "cores": cores,
        "ram": memory,
        "cores_requested": stats.requested_cores,
        "ram_requested": stats.requested_ram_gb,
        "instances": {"sessions": stats.interactive, "desktop-apps": stats.desktop_apps, "jobs": stats.headless},
        "shares": [
            {
                "user": share.user,
                "sessions": share.sessions,
                "cores": share.cores,
                "cores_share": 100 * share.cores / cores if cores else 0.0,
                "ram": share.ram_gb,
                "ram_share": 100 * share.ram_gb / memory if memory else 0.0,
                "cores_used": share.cores_used,
                "ram_used": share.ram_used_gb,
            }
            for share in shares([row.session for row in rows], manager.usage)
        ],
        "updated": views.when(manager.now()),
    }


def _query(request: Request) -> dict[str, str]:
    """The filter and the order the page was asked for (query parameters, so links and reloads keep them)."""
    params = request.query_params
    found = {"user": params.get("user", ""), "status": params.get("status", "")}
    found |= {"sort": params.get("sort", ""), "order": params.get("order", "")}
    return {key: value for key, value in found.items() if value}


def _sort_links(query: dict[str, str]) -> dict[str, dict[str, str]]:
    """Each column header's link: sort by it, or the other way round when it already does."""
    current, descending = query.get("sort", "user"), query.get("order") == "desc"
    links = {}
    for key, words in COLUMNS.items():
        order = "asc" if key != current or descending else "desc"
        sorted_by = ("descending" if descending else "ascending") if key == current else "none"
        links[key] = {
            "href": f"{PAGE}?{urlencode(query | {'sort': key, 'order': order})}",
            "words": words,
            "sort": sorted_by,  # aria-sort's word
            "arrow": {"ascending": "▲", "descending": "▼"}.get(sorted_by, ""),
        }
    return links


def live_context(manager: SessionManager, query: dict[str, str], csrf: str) -> dict[str, Any]:
    """What the polled part of the page shows: the rows asked for, and the load (`csrf`: the forms' token)."""
    everything = manager.admin.rows()
    status = status_named(query.get("status"))
    chosen = choose(everything, query.get("user"), status, sort_key(query.get("sort")), query.get("order") == "desc")
    return {
        "rows": [row_view(row) for row in chosen],
        "total": len(everything),
        "load": _load(manager, everything),
        "links": _sort_links(query),
        "query": query,
        "csrf": csrf,
    }


def _usage(manager: SessionManager) -> list[accounting.UsageLine]:
    return sorted(accounting.by_user(manager.usage_summary()).values(), key=lambda line: line.user)


@router.get("", response_class=HTMLResponse)
async def page(request: Request, manager: Manager) -> Response:
    user = auth_of(request).cookie(portal_cookie(request))
    if user is None:
        here = f"{PAGE}?{request.url.query}" if request.url.query else PAGE
        return RedirectResponse(f"/science-portal/login?next={quote(here, safe='')}", status_code=303)
    if not user.admin:
        raise Forbidden(ADMINS_ONLY)
    query = _query(request)
    context = live_context(manager, query, form_token(request)) | {
        "user": user,
        "users": manager.admin.users(),
        "statuses": [status.value for status in Status],
        "usage": _usage(manager),
        "everything": EVERYTHING,
    }
    return templates.TemplateResponse(request, "admin.html", context)


@router.get("/fragments/sessions", response_class=HTMLResponse)
async def fragment(request: Request, admin: AdminViewer, manager: Manager) -> Response:
    return templates.TemplateResponse(
        request, "_admin_live.html", live_context(manager, _query(request), form_token(request))
    )


async def _act(request: Request, action: Callable[[], Awaitable[str]], failed: str) -> Response:
    """Run an admin verb: its words, or its refusal in its own words and a failure of the platform's (5xx) as
    `failed` (pages.refused), back on this page."""
    try:
        return done(request, await action(), back=PAGE)
    except EmulatorError as exc:
        return refused(request, exc, failed, back=PAGE)


@router.post("/sessions/{ref}/renew")
async def renew(
    request: Request, ref: str, admin: AdminViewer, manager: Manager, csrf: Annotated[str, Form()] = ""
) -> Response:
    check_form(request, csrf)

    async def action() -> str:
        with audited(request, "admin-renew", admin.name, session=ref) as line:
            session, expiry = manager.admin.renew(admin, ref)
            line.update(whose(session))
        return f"renewed {session.name} of {session.user}: expires {views.when(expiry)}"

    return await _act(request, action, "renewing the session failed; see the service log")


@router.post("/sessions/{ref}/delete")
async def delete(
    request: Request,
    ref: str,
    admin: AdminViewer,
    manager: Manager,
    csrf: Annotated[str, Form()] = "",
    confirmed: Annotated[str, Form()] = "",
) -> Response:
    check_form(request, csrf)
    if confirmed != "yes":  # a browser without scripts: ask on a page of its own
        try:
            row = row_view(manager.admin.row(ref))
        except EmulatorError as exc:
            return refused(request, exc, "reading the session failed; see the service log", back=PAGE)
        return templates.TemplateResponse(request, "admin_confirm.html", {"row": row, "csrf": csrf})

    async def action() -> str:
        with audited(request, "admin-delete", admin.name, session=ref) as line:
            session = await manager.admin.delete(admin, ref)
            line.update(whose(session))
        return f"deleted {session.id} of {session.user}"

    return await _act(request, action, "deleting the session failed; see the service log")


@router.get("/sessions/{ref}/{view}")
async def session_text(ref: str, view: str, admin: AdminViewer, manager: Manager) -> Response:
    if view == "events":
        return PlainTextResponse(views.events_table(manager.admin.events(ref)))
    if view == "logs":
        return PlainTextResponse(await manager.admin.logs(ref))
    return PlainTextResponse("no such view\n", status_code=404)


@router.post("/users/delete")
async def delete_user(
    request: Request,
    admin: AdminViewer,
    manager: Manager,
    csrf: Annotated[str, Form()] = "",
    user: Annotated[str, Form()] = "",
    confirm: Annotated[str, Form()] = "",
) -> Response:
    check_form(request, csrf)

    async def action() -> str:
        with audited(request, "admin-delete-user", admin.name, user=user) as line:
            if not user:
                raise InvalidRequest("choose whose sessions to delete")
            deleted = await manager.admin.delete_user(admin, user, confirm)
            line["sessions"] = len(deleted)
        return f"deleted {len(deleted)} session(s) of {user}"

    return await _act(request, action, "deleting the sessions failed; see the service log")


@router.post("/everything/delete")
async def delete_everything(
    request: Request,
    admin: AdminViewer,
    manager: Manager,
    csrf: Annotated[str, Form()] = "",
    confirm: Annotated[str, Form()] = "",
) -> Response:
    check_form(request, csrf)

    async def action() -> str:
        with audited(request, "admin-delete-all", admin.name) as line:
            deleted = await manager.admin.delete_all(admin, confirm)
            line["sessions"] = len(deleted)
        return f"deleted every session: {len(deleted)}"

    return await _act(request, action, "deleting the sessions failed; see the service log")
