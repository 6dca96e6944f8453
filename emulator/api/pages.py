"""What the portal's pages share (the dashboard's, portal.py; the admin page's, admin_page.py): the templates,
the sign-in cookie and who it names, the token each form carries, and how a form's action answers (a script
gets its words as text, a browser without scripts goes back to the page with them)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated
from urllib.parse import quote

from fastapi import Depends, Request
from fastapi.responses import PlainTextResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from emulator.api.access import platform_cookie
from emulator.core.auth import Authenticator
from emulator.core.models import User
from emulator.errors import EmulatorError, NotAuthenticated
from emulator.gateway.base import PORTAL_COOKIE as COOKIE

log = logging.getLogger(__name__)
templates = Jinja2Templates(directory=Path(__file__).parent / "templates")
DASHBOARD = "/science-portal/"


def auth_of(request: Request) -> Authenticator:
    return request.app.state.auth  # type: ignore[no-any-return]  # Starlette's app.state is untyped


def portal_cookie(request: Request) -> str:
    """The portal's sign-in cookie as this browser sent it ("" without one)."""
    return platform_cookie(request, COOKIE)


def signed_in(request: Request) -> User:
    user = auth_of(request).cookie(portal_cookie(request))
    if user is None:
        raise NotAuthenticated("sign in")
    return user


Viewer = Annotated[User, Depends(signed_in)]


def form_token(request: Request) -> str:
    """The token this browser's forms carry: derived from its sign-in cookie, so another site cannot know it."""
    return auth_of(request).signins.form_token(portal_cookie(request))


def check_form(request: Request, token: str | None) -> None:
    if not auth_of(request).signins.form_token_ok(portal_cookie(request), token):
        raise NotAuthenticated("the form expired; reload the page")


def done(request: Request, message: str, status_code: int = 200, back: str = DASHBOARD) -> Response:
    """Scripts get the message as text; a browser without scripts goes `back` to its page, which shows it."""
    if request.headers.get("x-requested-with") == "portal":
        return PlainTextResponse(message, status_code=status_code)
    return RedirectResponse(f"{back}?message={quote(message)}", status_code=303)


def refused(
    request: Request, exc: EmulatorError, failed: str, status_code: int | None = None, back: str = DASHBOARD
) -> Response:
    """A verb's refusal as the page shows it: its message and status; a failure of the platform's own (5xx, often
    in the engine's words) as `failed` with 400, its detail in the log alone, as the API's errors.py does."""
    if exc.status_code >= 500:
        log.error("%s %s: %s", request.method, request.url.path, exc.message)
        return done(request, failed, 400, back)
    return done(request, exc.message, status_code or exc.status_code, back)
