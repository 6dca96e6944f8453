"""The gateway's questions before it proxies a session route: may this caller open this session?

Caddy's forward_auth asks GET /auth/session with the original method and URI in X-Forwarded-*
and the caller's cookies and Authorization header. 2xx lets the request through; any other answer
goes back to the caller as it is: a browser without a sign-in is sent to sign in and brought back.

Where sessions have hosts of their own, a browser there is known by that host's visit cookie alone
(the portal's cookie never reaches it): one without is sent through the portal, which hands it a
one-time ticket for GET /auth/visit on the session's host, which sets the cookie. /auth/tls tells the
gateway which session hosts may have a certificate: those of sessions that live.
"""

from __future__ import annotations

import re
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse, RedirectResponse, Response

from emulator.api.origin import REFUSED, from_elsewhere
from emulator.core.auth import Authenticator, RouteAccess
from emulator.core.models import User
from emulator.core.signin import cookie_name
from emulator.gateway.base import PORTAL_COOKIE as COOKIE
from emulator.gateway.base import PROBE_HEADER, SESSION_HEADER, SESSION_HOST_HEADER, SESSION_ID_PATTERN, VISIT_COOKIE
from emulator.settings import Settings

router = APIRouter()

_SESSION_ID = re.compile(SESSION_ID_PATTERN)


_SAFE_NEXT = re.compile(r"/session/[^\s\\]*")  # fullmatch


def _settings(request: Request) -> Settings:
    return request.app.state.settings  # type: ignore[no-any-return]  # Starlette's app.state is untyped


def secure(request: Request) -> bool:
    return request.headers.get("x-forwarded-proto", request.url.scheme) == "https"


def platform_cookie(request: Request, name: str) -> str:
    """One of the platform's cookies as the browser sent it; "" without one, and "" when it sent two: a second
    is one a page elsewhere planted (for a parent domain, or a longer path) to sign the visitor in as someone
    else, which the browser sends beside the real one."""
    wanted = cookie_name(name, secure(request))
    sent = [part.strip() for part in request.headers.get("cookie", "").split(";")]
    found = [part.split("=", 1)[1] for part in sent if part.startswith(f"{wanted}=")]
    return found[0] if len(found) == 1 else ""


def client_address(request: Request) -> str | None:
    """The client as the gateway saw it (the sign-in throttle's key, the audit log's `from`): the last
    X-Forwarded-For entry is the gateway's own (anything before it is what the client claimed)."""
    forwarded = request.headers.get("x-forwarded-for", "")
    if forwarded:
        return forwarded.rsplit(",", 1)[-1].strip() or None
    return request.client.host if request.client else None


def signed_in_cookie(request: Request, response: Response, cookie: str, value: str, max_age: int) -> Response:
    """`response` setting one of the platform's sign-in cookies: HttpOnly, SameSite=Lax, for this host's whole
    site (host-only: no Domain, so no other host gets it; every port of this host does), and over HTTPS Secure and
    `__Host-` prefixed."""
    https = secure(request)
    response.set_cookie(
        cookie_name(cookie, https), value, max_age=max_age, httponly=True, samesite="lax", secure=https, path="/"
    )
    return response


def signed_out_cookie(request: Request, response: Response, cookie: str) -> Response:
    """`response` clearing one of the platform's sign-in cookies (set as `signed_in_cookie` sets it)."""
    https = secure(request)
    response.delete_cookie(cookie_name(cookie, https), path="/", secure=https, httponly=True, samesite="lax")
    return response


def redirect_signed_in(request: Request, target: str, cookie: str, value: str, max_age: int) -> Response:
    """A 303 to `target` setting one of the platform's sign-in cookies (`signed_in_cookie`)."""
    return signed_in_cookie(request, RedirectResponse(target, status_code=303), cookie, value, max_age)


def requester(request: Request, auth: Authenticator, session_id: str) -> User | None:
    """Who asks: a bearer token anywhere; on a session's own host its visit cookie; on the portal's host the
    portal's cookie only where sessions have no hosts of their own (else browsers never get this far)."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return auth.bearer(token.strip())
    on_host = request.headers.get(SESSION_HOST_HEADER)
    if on_host:
        if on_host != session_id:
            return None
        return auth.visitor(platform_cookie(request, VISIT_COOKIE), session_id)
    if _settings(request).session_hosts is not None:
        return None
    return auth.cookie(platform_cookie(request, COOKIE))


@router.get("/auth/session", include_in_schema=False)
async def session_route(request: Request) -> Response:
    auth: Authenticator = request.app.state.auth
    uri = request.headers.get("x-forwarded-uri", "")
    # The id the gateway routes to (captured from the cleaned path), never one read from the raw URI.
    session_id = request.headers.get(SESSION_HEADER, "")
    if not _SESSION_ID.fullmatch(session_id):
        return PlainTextResponse("not a session route\n", status_code=404)
    if auth.is_probe(request.headers.get(PROBE_HEADER), session_id):
        return Response(status_code=204)
    if request.headers.get(SESSION_HOST_HEADER) and _from_elsewhere(request):
        # All of an operator's <id>.<domain> hosts are one site to a browser, so its SameSite cookies go along
        # with what one session's page sends another: only the session's own pages, links and scripts pass.
        return PlainTextResponse(REFUSED, status_code=403)
    verdict = auth.route_access(requester(request, auth, session_id), session_id)
    if verdict is RouteAccess.ALLOWED:
        return Response(status_code=204)
    if verdict is RouteAccess.NOT_SIGNED_IN:
        if "text/html" in request.headers.get("accept", ""):
            return _sign_in_first(request, session_id, uri)
        return PlainTextResponse("sign in first: a bearer token or the portal's cookie\n", status_code=401)
    if verdict is RouteAccess.FORBIDDEN:
        return PlainTextResponse("this session is not yours, nor shared with a group of yours\n", status_code=403)
    return PlainTextResponse("no such session\n", status_code=404)


def _sign_in_first(request: Request, session_id: str, uri: str) -> Response:
    """Where a browser without a sign-in for this session goes: through the portal, which knows it."""
    settings = _settings(request)
    hosts = settings.session_hosts
    if hosts is None:
        return RedirectResponse(f"/science-portal/login?next={quote(uri, safe='')}", status_code=302)
    if not request.headers.get(SESSION_HOST_HEADER):  # a browser that sends no fetch metadata, on the portal's host
        return RedirectResponse(hosts.origin(session_id) + uri, status_code=307)
    visit = f"{settings.base_url}/science-portal/visit?session={session_id}&next={quote(uri, safe='')}"
    return RedirectResponse(visit, status_code=302)


def _from_elsewhere(request: Request) -> bool:
    """A session's host asked, through the gateway, about a request another origin's page made a browser send
    (the original request's headers, Host included, come with the question)."""
    method = request.headers.get("x-forwarded-method", "GET")
    return from_elsewhere(method, dict(request.scope["headers"]), any_origin_header=True)


@router.get("/auth/visit", include_in_schema=False)
async def visit(request: Request, ticket: str = "", next: str = "") -> Response:
    """On a session's host: the portal's ticket becomes this host's visit cookie, and the browser goes on."""
    auth: Authenticator = request.app.state.auth
    if _from_elsewhere(request):  # a ticket is followed as a link, never fetched by a page
        return PlainTextResponse(REFUSED, status_code=403)
    session_id = request.headers.get(SESSION_HOST_HEADER, "")
    user = auth.redeem(ticket, session_id) if _SESSION_ID.fullmatch(session_id) else None
    if user is None:
        return PlainTextResponse(
            "this sign-in link is spent or was made for another session: open the session from the portal again\n",
            status_code=403,
        )
    visit_cookie = auth.signins.visit(user.name, auth.fingerprint(user.name), session_id)
    target = next if _SAFE_NEXT.fullmatch(next) else "/"
    return redirect_signed_in(request, target, VISIT_COOKIE, visit_cookie, auth.signins.lifetime)


@router.get("/auth/tls", include_in_schema=False)
async def certificate_wanted(request: Request, domain: str = "") -> Response:
    """Caddy's on-demand TLS asks before it makes a certificate for a host: only a live session's own."""
    auth: Authenticator = request.app.state.auth
    hosts = _settings(request).session_hosts
    session_id, _, rest = domain.lower().partition(".")
    if hosts is None or rest != hosts.domain or not _SESSION_ID.fullmatch(session_id) or not auth.lives(session_id):
        return PlainTextResponse("no such session host\n", status_code=404)
    return Response(status_code=200)
