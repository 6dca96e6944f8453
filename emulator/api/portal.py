"""The Science Portal: sign-in, the dashboard of one's sessions, the launch form, renew and delete.

Server-rendered pages (Jinja2) with a little JavaScript that refreshes the session cards and the
platform load while the page is open. It is a face like the API: every action is a manager verb.
Form posts carry a token derived from the sign-in cookie (which is HttpOnly and SameSite=Lax).
"""

from __future__ import annotations

import base64
import hashlib
import re
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from emulator.api import notices, views
from emulator.api.access import redirect_signed_in, signed_out_cookie
from emulator.api.audit import audit, audited, launch_audited
from emulator.api.deps import ADMINS_ONLY, Manager
from emulator.api.metrics import launch_counted
from emulator.api.pages import Viewer, auth_of, check_form, done, form_token, portal_cookie, refused, templates
from emulator.api.signin import sign_in
from emulator.api.storage import home_storage
from emulator.core import idle
from emulator.core.auth import RouteAccess
from emulator.core.models import LaunchRequest, Session, Status, User
from emulator.core.sessions import SessionManager
from emulator.errors import EmulatorError, NotFound
from emulator.gateway.base import PORTAL_COOKIE as COOKIE
from emulator.gateway.base import VISIT_PATH
from emulator.session_types import SessionType

router = APIRouter(prefix="/science-portal", include_in_schema=False)

# The types a person launches from the form (skaha's portal offers these five).
FORM_TYPES = [
    SessionType.NOTEBOOK,
    SessionType.DESKTOP,
    SessionType.CARTA,
    SessionType.CONTRIBUTED,
    SessionType.FIREFLY,
]
FIXED_CHOICE = {SessionType.NOTEBOOK, SessionType.CARTA, SessionType.CONTRIBUTED}
WARN_BEFORE_EXPIRY_SECONDS = 6 * 3600
_SAFE_NEXT = re.compile(r"/(?!/)[^\s\\]*")  # fullmatch: a path on this site


def _time_left(expiry: datetime, now: datetime) -> str:
    seconds = int((expiry - now).total_seconds())
    return f"{views.duration(seconds)} left" if seconds > 0 else "expired"


def _card(manager: SessionManager, user: User, session: Session) -> dict[str, Any]:
    usage = manager.usage(session)
    r = session.resources
    events = manager.events(user, session.id) if session.status is not Status.TERMINATING else []
    now = manager.now()
    limits = manager.limits  # a figure the engine does not hold is marked, never promised
    return {
        "id": session.id,
        "name": session.name,
        "type": session.type.value,
        "status": session.status.value,
        "image": session.image,
        "started": views.when(session.start_time),
        "expires": views.when(session.expiry_time),
        "left": _time_left(session.expiry_time, now),
        "expiring": (session.expiry_time - now).total_seconds() < WARN_BEFORE_EXPIRY_SECONDS,
        "ram": f"{views.number(r.ram_request_gb)} GB"
        + ("" if r.fixed else f" (up to {views.number(r.ram_limit_gb)})")
        + ("" if limits.memory else " (not enforced)"),
        "cores": views.number(r.cores_request)
        + ("" if r.fixed else f" (up to {views.number(r.cores_limit)})")
        + ("" if limits.cpu else " (not enforced)"),
        "gpus": r.gpus,
        "ram_used": f"{usage.memory_bytes / 1024**3:.2f} GB" if usage else "–",
        "cores_used": f"{usage.cpu_cores:.2f}" if usage else "–",
        "connect": manager.connect_url(session) if session.status is Status.RUNNING else "",
        "why": events[-1].message if events else "",
        "activity": views.ago(session.last_activity, now),  # through the gateway (core/activity.py)
        "idle": idle.notice(session, events),  # about to be deleted for inactivity (core/idle.py)
        "pull": _pull_line(manager.pull_progress(user, session.id)) if session.status is Status.PENDING else "",
        **_relaunch_fields(session),
    }


def _relaunch_fields(session: Session) -> dict[str, Any]:
    """What an ended card shows (when it ended) and what Edit and relaunch puts back in the launch form."""
    r = session.resources
    return {
        "ended": views.when(session.ended_at) if session.status.final and session.ended_at else "",
        "final": session.status.final,
        "fixed": r.fixed,
        "cores_asked": views.number(r.cores_request),
        "ram_asked": views.number(r.ram_request_gb),
    }


def _pull_line(progress: dict[str, Any] | None) -> str:
    if not progress:
        return ""
    layers, size = progress["layers"], progress["bytes"]
    megabytes = f", {size['current'] / 1e6:.0f} of {size['total'] / 1e6:.0f} MB" if size["total"] else ""
    return f"Pulling image: {layers['done']} of {layers['total']} layers{megabytes}"


def _cards(manager: SessionManager, user: User) -> list[dict[str, Any]]:
    """A card for each session of the form's types, ended ones too (Succeeded or Failed, kept for a day:
    finished_retention_seconds), which offer Relaunch."""
    return [_card(manager, user, s) for s in manager.sessions(user) if s.type in FORM_TYPES]


async def _load(manager: SessionManager) -> dict[str, Any]:
    stats = manager.stats()
    cores, memory = stats.capacity.cores, stats.capacity.memory_gb
    return {
        "cores_free": max(0.0, cores - stats.requested_cores),
        "cores": cores,
        "ram_free": max(0.0, memory - stats.requested_ram_gb),
        "ram": memory,
        "instances": {"sessions": stats.interactive, "desktop-apps": stats.desktop_apps, "jobs": stats.headless},
        "queued": manager.queue_length(),  # jobs waiting for room (core/queue.py)
        "updated": views.when(manager.now()),
        # Across a swarm, each machine's share (one machine's figures are those above).
        "nodes": [views.node_json(n) for n in await manager.nodes()] if manager.distributed else [],
        # Said where the figures are: a session's limits that this engine does not hold, and why.
        "unenforced": manager.limits.named,
        "why_not": manager.limits.why_not,
        "ram_counts_cache": manager.ram_counts_cache,
    }


@router.get("/login", response_class=HTMLResponse)
async def login_page(request: Request, next: str = "/science-portal/") -> Response:
    return templates.TemplateResponse(request, "login.html", {"next": next, "error": ""})


@router.post("/login", response_class=HTMLResponse)
async def login(
    request: Request,
    username: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "/science-portal/",
) -> Response:
    auth = auth_of(request)  # another site's page cannot post here: OwnPagesOnly (api/origin.py) refused it
    attempt = await sign_in(request, username, password)
    if attempt.retry_after:
        context = {"next": next, "error": attempt.throttle_message, "username": username}
        headers = {"Retry-After": str(attempt.retry_after)}
        return templates.TemplateResponse(request, "login.html", context, status_code=429, headers=headers)
    user = attempt.user
    if user is None:
        context = {"next": next, "error": "Wrong user name or password.", "username": username}
        return templates.TemplateResponse(request, "login.html", context, status_code=401)
    target = next if _SAFE_NEXT.fullmatch(next) else "/science-portal/"  # never off this site
    cookie = auth.signins.issue(user.name, auth.fingerprint(user.name))
    return redirect_signed_in(request, target, COOKIE, cookie, auth.signins.lifetime)


@router.post("/logout")
async def logout(request: Request, csrf: Annotated[str, Form()] = "") -> Response:
    check_form(request, csrf)
    user = auth_of(request).cookie(portal_cookie(request))
    audit(request, "logout", user.name if user else None)
    return signed_out_cookie(request, RedirectResponse("/science-portal/login", status_code=303), COOKIE)


@router.get("/visit")
async def visit(request: Request, session: str = "", next: str = "") -> Response:
    """On the way to a session's own host: a signed-in browser that may open the session gets a one-time
    ticket for it, which that host turns into its own cookie (the portal's cookie never goes there)."""
    auth = auth_of(request)
    user = auth.cookie(portal_cookie(request))
    if user is None:
        here = f"/science-portal/visit?session={quote(session, safe='')}&next={quote(next, safe='')}"
        return RedirectResponse(f"/science-portal/login?next={quote(here, safe='')}", status_code=303)
    verdict = auth.route_access(user, session)
    hosts = request.app.state.settings.session_hosts
    if verdict is RouteAccess.FORBIDDEN:
        return PlainTextResponse("this session is not yours, nor shared with a group of yours\n", status_code=403)
    if verdict is not RouteAccess.ALLOWED or hosts is None:
        return PlainTextResponse("no such session\n", status_code=404)
    ticket = auth.signins.ticket(user.name, auth.fingerprint(user.name), session)
    target = f"{hosts.origin(session)}{VISIT_PATH}?ticket={quote(ticket, safe='')}&next={quote(next, safe='')}"
    return RedirectResponse(target, status_code=303)


@router.get("/", response_class=HTMLResponse)
async def dashboard(request: Request, manager: Manager) -> Response:
    user = auth_of(request).cookie(portal_cookie(request))
    if user is None:
        return RedirectResponse(f"/science-portal/login?next={quote('/science-portal/', safe='')}", status_code=303)
    catalogue = [e for e in await manager.catalogue(user, None) if any(t in FORM_TYPES for t in e.types)]
    live = [s for s in manager.sessions(user) if s.status.live and s.type in FORM_TYPES]
    context = {
        "user": user,
        "csrf": form_token(request),
        "cards": _cards(manager, user),
        "load": await _load(manager),
        "storage": await run_in_threadpool(
            home_storage,
            manager.host_home(user),
            request.app.state.settings.layout.arc_path,
            await manager.quotas.home_use(user.name) if manager.quotas.enabled else None,
        ),
        "types": [t.value for t in FORM_TYPES],
        "fixed_types": sorted(t.value for t in FIXED_CHOICE),
        "images": [{"id": e.id, "types": e.types, "description": e.description} for e in catalogue],
        "context": manager.context,
        "active": len(live),
        "limit": manager.max_sessions,
        "notice": _notice(manager),
    }
    return templates.TemplateResponse(request, "dashboard.html", context)


def _notice(manager: SessionManager) -> dict[str, str] | None:
    """The admins' message to the room, as the banner shows it (None: there is none)."""
    notice = manager.broadcast.current()
    if notice is None:
        return None
    return {
        "text": notice.text,
        "set_by": notice.set_by,
        "set_at": views.when(notice.set_at),
        # Tells one message from the next (two set within a second too): a page replaces its banner when it changes.
        "key": hashlib.sha256(f"{notice.set_at.isoformat()} {notice.set_by} {notice.text}".encode()).hexdigest()[:16],
    }


@router.get("/fragments/sessions", response_class=HTMLResponse)
async def sessions_fragment(request: Request, user: Viewer, manager: Manager) -> Response:
    context = {"cards": _cards(manager, user), "csrf": form_token(request)}
    return templates.TemplateResponse(request, "_sessions.html", context)


@router.get("/fragments/load", response_class=HTMLResponse)
async def load_fragment(request: Request, user: Viewer, manager: Manager) -> Response:
    return templates.TemplateResponse(request, "_load.html", {"load": await _load(manager)})


@router.get("/fragments/notice", response_class=HTMLResponse)
async def notice_fragment(request: Request, user: Viewer, manager: Manager) -> Response:
    """The banner alone: every open dashboard asks for it every few seconds (one small read of the store)."""
    return templates.TemplateResponse(request, "_notice.html", {"notice": _notice(manager)})


@router.post("/launch")
async def launch(
    request: Request,
    user: Viewer,
    manager: Manager,
    csrf: Annotated[str, Form()] = "",
    type: Annotated[str, Form()] = "",
    image: Annotated[str, Form()] = "",
    name: Annotated[str, Form()] = "",
    resources: Annotated[str, Form()] = "flexible",
    cores: Annotated[str, Form()] = "",
    ram: Annotated[str, Form()] = "",
    gpus: Annotated[str, Form()] = "",
    custom_image: Annotated[str, Form()] = "",
    registry_username: Annotated[str, Form()] = "",
    registry_secret: Annotated[str, Form()] = "",
) -> Response:
    check_form(request, csrf)
    fixed = resources == "fixed"
    if bool(registry_username.strip()) != bool(registry_secret):
        return done(request, "give both the registry username and its secret, or neither", 400)
    registry_auth = None
    if registry_username.strip():  # skaha's header, as the portal's back end builds it
        registry_auth = base64.b64encode(f"{registry_username.strip()}:{registry_secret}".encode()).decode()
    request_ = LaunchRequest(
        name=name,
        image=custom_image.strip() or image,
        type=type,
        cores=cores if fixed else None,
        ram=ram if fixed else None,
        gpus=gpus if fixed and gpus not in ("", "0") else None,
        registry_auth=registry_auth,
    )
    try:
        with launch_counted(request, request_.type), launch_audited(request, user, request_) as line:
            line["session"] = session_id = await manager.launch(user, request_)
    except EmulatorError as exc:
        return refused(request, exc, "the launch failed; see the service log", 400)
    return done(request, session_id)


@router.post("/sessions/{session_id}/renew")
async def renew(
    request: Request, session_id: str, user: Viewer, manager: Manager, csrf: Annotated[str, Form()] = ""
) -> Response:
    check_form(request, csrf)
    try:
        with audited(request, "renew", user.name, session=session_id):
            expiry = await manager.renew(user, session_id, "renew")
    except EmulatorError as exc:
        return refused(request, exc, "renewing the session failed; see the service log")
    return done(request, f"renewed: expires {views.when(expiry)}")


@router.post("/sessions/{session_id}/snapshot")
async def snapshot(
    request: Request, session_id: str, user: Viewer, manager: Manager, csrf: Annotated[str, Form()] = ""
) -> Response:
    """Save as image: the page's script gets the image's name alone (it adds it to the launch form's menu)."""
    check_form(request, csrf)
    try:
        with audited(request, "snapshot", user.name, session=session_id) as line:
            line["image"] = name = await manager.snapshot(user, session_id, None)
    except EmulatorError as exc:
        return refused(request, exc, "saving the image failed; see the service log")
    if request.headers.get("x-requested-with") == "portal":
        return PlainTextResponse(name)
    return done(request, f"saved as image {name}: launch it from the form below")


@router.post("/sessions/{session_id}/relaunch")
async def relaunch(
    request: Request, session_id: str, user: Viewer, manager: Manager, csrf: Annotated[str, Form()] = ""
) -> Response:
    """An ended session of the caller's launched again with its type, image, name and resources (core/relaunch.py);
    the script gets the new session's id."""
    check_form(request, csrf)
    try:
        with audited(request, "relaunch", user.name, previous=session_id) as line:
            ended = manager.get(user, session_id)
            line.update(type=ended.type.value, image=ended.image)
            with launch_counted(request, ended.type.value):
                line["session"] = new_id = await manager.relaunch(user, session_id)
    except NotFound:
        return done(request, f"no session {session_id}", 404)
    except EmulatorError as exc:
        return refused(request, exc, "the relaunch failed; see the service log", 400)
    return done(request, new_id)


@router.post("/broadcast")
async def broadcast(
    request: Request,
    user: Viewer,
    manager: Manager,
    csrf: Annotated[str, Form()] = "",
    text: Annotated[str, Form()] = "",
) -> Response:
    """An admin's message to the room, from the dashboard's form (the API's PUT /skaha/v1/admin/broadcast)."""
    check_form(request, csrf)
    if not user.admin:
        return done(request, ADMINS_ONLY, 403)
    try:
        notices.announce(request, manager, user, text)
    except EmulatorError as exc:
        return refused(request, exc, "setting the message failed; see the service log")
    return done(request, "shown on every dashboard")


@router.post("/broadcast/clear")
async def clear_broadcast(
    request: Request, user: Viewer, manager: Manager, csrf: Annotated[str, Form()] = ""
) -> Response:
    check_form(request, csrf)
    if not user.admin:
        return done(request, ADMINS_ONLY, 403)
    cleared = notices.withdraw(request, manager, user)
    return done(request, "the message is taken down" if cleared else "there was no message to take down")


@router.post("/sessions/{session_id}/delete")
async def delete(
    request: Request, session_id: str, user: Viewer, manager: Manager, csrf: Annotated[str, Form()] = ""
) -> Response:
    check_form(request, csrf)
    try:
        with audited(request, "delete", user.name, session=session_id):
            await manager.delete(user, session_id)
    except NotFound:
        return done(request, f"no session {session_id}", 404)
    except EmulatorError as exc:
        return refused(request, exc, "deleting the session failed; see the service log")
    return done(request, f"deleted {session_id}")


@router.get("/sessions/{session_id}/{view}")
async def session_text(session_id: str, view: str, user: Viewer, manager: Manager) -> Response:
    if view == "events":
        return PlainTextResponse(views.events_table(manager.events(user, session_id)))
    if view == "logs":
        return PlainTextResponse(await manager.logs(user, session_id))
    return PlainTextResponse("no such view\n", status_code=404)
