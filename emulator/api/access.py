"""The gateway's question before it proxies a session route: may this caller open this session?

Caddy's forward_auth asks GET /auth/session with the original method and URI in X-Forwarded-*
and the caller's cookies and Authorization header. 2xx lets the request through; any other answer
goes back to the caller as it is: a browser without a sign-in is sent to sign in and brought back.
"""

from __future__ import annotations

import re
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse, RedirectResponse, Response

from emulator.core.auth import Authenticator, RouteAccess
from emulator.core.models import User
from emulator.core.signin import COOKIE
from emulator.gateway.base import PROBE_HEADER, SESSION_HEADER, SESSION_ID_PATTERN

router = APIRouter()

_SESSION_ID = re.compile(SESSION_ID_PATTERN)


def requester(request: Request, auth: Authenticator) -> User | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return auth.bearer(token.strip())
    return auth.cookie(request.cookies.get(COOKIE))


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
    verdict = auth.route_access(requester(request, auth), session_id)
    if verdict is RouteAccess.ALLOWED:
        return Response(status_code=204)
    if verdict is RouteAccess.NOT_SIGNED_IN:
        if "text/html" in request.headers.get("accept", ""):
            return RedirectResponse(f"/science-portal/login?next={quote(uri, safe='')}", status_code=302)
        return PlainTextResponse("sign in first: a bearer token or the portal's cookie\n", status_code=401)
    if verdict is RouteAccess.FORBIDDEN:
        return PlainTextResponse("this session is not yours, nor shared with a group of yours\n", status_code=403)
    return PlainTextResponse("no such session\n", status_code=404)
