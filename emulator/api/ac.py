"""CADC's access service, as much of it as CANFAR's Science Portal 2.0 signs in through: /ac/login, /ac/whoami,
/ac/logout.

/ac/login takes what our portal's sign-in takes (a name and password, or the user's API token as the password),
with the same back-off and audit lines (api/signin.py), and answers the user's own API token as text: the token
the skaha API takes as a Bearer token. It also sets our portal's sign-in cookie, as CADC's login sets CADC_SSO:
a cookie is per host, not per port, so a portal on another port of this host that hands it on to the browser
signs that browser in to the gateway's session routes too (Connect from its tab).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from emulator.api.access import signed_in_cookie, signed_out_cookie
from emulator.api.audit import audit
from emulator.api.pages import auth_of, portal_cookie
from emulator.api.signin import sign_in
from emulator.core.models import User
from emulator.gateway.base import PORTAL_COOKIE as COOKIE

router = APIRouter(prefix="/ac", include_in_schema=False)

MAX_USERNAME = 256  # longer is no user's name: refused before it is checked or kept by the throttle
MAX_PASSWORD = 4096
IVO_USERS = "ivo://skaha-emulator/user"  # the internal ids' base: ours, not CADC's registry
WRONG = "Login failed: invalid username or password\n"


def user_document(user: User) -> dict[str, Any]:
    """CADC's user, as /ac/whoami answers it in JSON (badgerfish: each value under "$")."""
    return {
        "internalID": {"uri": {"$": f"{IVO_USERS}?{user.name}"}},
        "identities": {"$": [{"identity": {"@type": "HTTP", "$": user.name}}]},
        "personalDetails": {"firstName": {"$": user.name}, "lastName": {"$": "Emulated"}},
        "posixDetails": {
            "username": {"$": user.name},
            "uid": {"$": user.uid},
            "gid": {"$": user.gid},
            "homeDirectory": {"$": f"/arc/home/{user.name}"},
        },
    }


def _bad_input(username: str, password: str) -> str | None:
    if not username.strip() or not password:
        return "username and password are both required (form fields)\n"
    if len(username) > MAX_USERNAME or len(password) > MAX_PASSWORD:
        return f"username longer than {MAX_USERNAME} or password longer than {MAX_PASSWORD} characters\n"
    return None


@router.post("/login")
async def login(
    request: Request, username: Annotated[str, Form()] = "", password: Annotated[str, Form()] = ""
) -> Response:
    refusal = _bad_input(username, password)
    if refusal:
        return PlainTextResponse(refusal, status_code=400)
    attempt = await sign_in(request, username, password)
    if attempt.retry_after:
        headers = {"Retry-After": str(attempt.retry_after)}
        return PlainTextResponse(attempt.throttle_message + "\n", status_code=429, headers=headers)
    auth = auth_of(request)
    token = auth.api_token(attempt.user.name) if attempt.user is not None else None
    if attempt.user is None or token is None:
        return PlainTextResponse(WRONG, status_code=401)
    cookie = auth.signins.issue(attempt.user.name, auth.fingerprint(attempt.user.name))
    return signed_in_cookie(request, PlainTextResponse(token), COOKIE, cookie, auth.signins.lifetime)


def _caller(request: Request) -> User | None:
    """A Bearer token (a user's, or a session's own, which acts as its owner), else our portal's cookie (the real
    portal forwards its browser's cookies)."""
    auth = auth_of(request)
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return auth.bearer(token.strip())
    return auth.cookie(portal_cookie(request))


@router.get("/whoami")
async def whoami(request: Request) -> Response:
    user = _caller(request)
    if user is None:
        return PlainTextResponse("not authenticated: a Bearer token or a sign-in cookie is required\n", 401)
    return JSONResponse(user_document(user))


@router.api_route("/logout", methods=["GET", "POST"])
async def logout(request: Request) -> Response:
    user = auth_of(request).cookie(portal_cookie(request))
    audit(request, "logout", user.name if user else None)
    return signed_out_cookie(request, PlainTextResponse("signed out\n"), COOKIE)
