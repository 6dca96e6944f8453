"""Request plumbing: the API version, the caller's identity, skaha's query-or-form parameters, and
the manager, each as an `Annotated` alias the handlers name in their signatures."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from starlette.datastructures import MultiDict
from starlette.exceptions import HTTPException

from emulator.core.auth import Authenticator
from emulator.core.models import User
from emulator.core.sessions import SessionManager
from emulator.errors import Forbidden, NotAuthenticated

VERSIONS = ("v0", "v1")


@dataclass
class Params:
    """Parameters from the query string and a form body, merged (cadc-rest SyncInput)."""

    values: MultiDict

    def get(self, key: str) -> str | None:
        value = self.values.get(key)
        return None if value is None else str(value)

    def getlist(self, key: str) -> list[str]:
        return [str(v) for v in self.values.getlist(key)]


def api_version(version: str) -> str:
    """The `{version}` path segment; any other than v0 and v1 is a path that does not exist."""
    if version not in VERSIONS:
        raise HTTPException(status_code=404)
    return version


async def params(request: Request) -> Params:
    items = list(request.query_params.multi_items())
    content_type = request.headers.get("content-type", "").lower()  # media types are case-insensitive
    if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        form = await request.form()
        items += [(k, v) for k, v in form.multi_items() if isinstance(v, str)]
    return Params(MultiDict(items))


def manager(request: Request) -> SessionManager:
    return request.app.state.manager  # type: ignore[no-any-return]  # Starlette's app.state is untyped


def caller(request: Request) -> User:
    """The user a bearer token names, or the owner of the desktop whose callback token
    (`x-auth-token-skaha`, skaha's DESKTOP_SESSION_APP_TOKEN) an anonymous request carries;
    skaha answers 401 `Unauthorized` otherwise."""
    auth: Authenticator = request.app.state.auth
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    user: User | None = None
    if scheme.lower() == "bearer" and token.strip():
        user = auth.bearer(token.strip())
    elif not header and request.headers.get("x-auth-token-skaha"):
        user = auth.callback(request.headers["x-auth-token-skaha"])
    if user is None:
        raise NotAuthenticated("Unauthorized")
    return user


def by_session(request: Request) -> bool:
    """Whether the caller was let in by a session's own token (CANFAR_TOKEN, or a desktop's callback token):
    code running in a session, not a person."""
    auth: Authenticator = request.app.state.auth
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() != "bearer" or not auth.is_users_token(token.strip())


# What anyone but an admin is told, by the admin API, the admin page and the dashboard's admin forms alike.
ADMINS_ONLY = "admins only: ask an admin (`emulate users admin NAME` makes one)"


def admin_caller(request: Request, user: Annotated[User, Depends(caller)]) -> User:
    """An admin, by their own API token: a session's token (CANFAR_TOKEN, a callback token) acts as its owner
    everywhere else, but code in an admin's session never gets the admin's powers over everyone's sessions."""
    if not user.admin or by_session(request):
        raise Forbidden(ADMINS_ONLY)
    return user


Version = Annotated[str, Depends(api_version)]
Query = Annotated[Params, Depends(params)]
CurrentUser = Annotated[User, Depends(caller)]
AdminUser = Annotated[User, Depends(admin_caller)]
Manager = Annotated[SessionManager, Depends(manager)]
