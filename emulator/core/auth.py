"""Who is asking, and whether they may open a session's routes.

A caller is known by a user's bearer token, by the portal's sign-in cookie, on a session's own host by
that host's visit cookie (core/signin.py), or (for the API only) by a desktop's callback token (skaha's
DESKTOP_SESSION_APP_TOKEN, sent as `x-auth-token-skaha`) while its session lives. A session's routes
open for its owner and for anyone sharing one of the owner's groups, as CANFAR shares session URLs.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import secrets

from emulator.core.callback import CallbackTokens
from emulator.core.identity import UsersSource
from emulator.core.models import User
from emulator.core.signin import SignIns
from emulator.core.store import Store
from emulator.core.throttle import SignInThrottle
from emulator.gateway.base import PROBE_HEADER

__all__ = ["PROBE_HEADER", "Authenticator", "RouteAccess"]


class RouteAccess(enum.Enum):
    ALLOWED = "allowed"
    NO_SESSION = "no such session"
    NOT_SIGNED_IN = "not signed in"
    FORBIDDEN = "not the owner's, nor in a group of theirs"


class Authenticator:
    def __init__(self, users: UsersSource, callbacks: CallbackTokens, signins: SignIns, store: Store) -> None:
        self._users = users
        self._callbacks = callbacks
        self.signins = signins
        self._store = store
        # The service's own readiness probes pass the gateway's check with a token per session, made
        # from this secret; the gateway takes the header off before the request reaches the session.
        self._probe_secret = secrets.token_bytes(32)
        self.throttle = SignInThrottle()

    def probe_token(self, session_id: str) -> str:
        return hmac.new(self._probe_secret, f"probe|{session_id}".encode(), hashlib.sha256).hexdigest()

    def is_probe(self, header: str | None, session_id: str) -> bool:
        return bool(header) and hmac.compare_digest((header or "").encode(), self.probe_token(session_id).encode())

    def bearer(self, token: str) -> User | None:
        """The user an API token names; or a session's own token (CANFAR_TOKEN inside it, the callback token),
        which acts as the session's owner while the session lives, so the canfar client works in a session
        with nothing set up and the owner's real token never enters a container."""
        return self._users.current().authenticate(token) or self.callback(token)

    def is_users_token(self, token: str) -> bool:
        """Whether `token` is a user's own API token (not a session's, which code inside a session holds)."""
        return self._users.current().authenticate(token) is not None

    def api_token(self, name: str) -> str | None:
        """The named user's own API token (what the access service's /ac/login answers), None for no such user."""
        return self._users.current().tokens.get(name)

    def cookie(self, value: str | None) -> User | None:
        """The user a genuine cookie names, while their password and token are still those it was made under."""
        name = self.signins.user_of(value)
        directory = self._users.current()
        user = directory.get(name) if name else None
        if user is None or not self.signins.fingerprint_ok(value, directory.fingerprint(user.name)):
            return None
        return user

    def _current(self, found: tuple[str, str] | None) -> User | None:
        """The user (name, fingerprint) names, while their password and token are still those it was made under."""
        if found is None:
            return None
        directory = self._users.current()
        user = directory.get(found[0])
        if user is None or not hmac.compare_digest(found[1].encode(), directory.fingerprint(user.name).encode()):
            return None
        return user

    def visitor(self, cookie: str | None, session_id: str) -> User | None:
        """The user a session host's visit cookie, made for that very session, names."""
        return self._current(self.signins.visitor(cookie, session_id))

    def redeem(self, ticket: str | None, session_id: str) -> User | None:
        """The user of the portal's one-time ticket for this session's host."""
        return self._current(self.signins.redeem(ticket, session_id))

    def user_named(self, name: str) -> User | None:
        return self._users.current().get(name)

    def fingerprint(self, name: str) -> str:
        return self._users.current().fingerprint(name)

    def sign_in(self, name: str, secret: str) -> User | None:
        """A user by name and password, or by their API token given as the password."""
        directory = self._users.current()
        user = directory.sign_in(name, secret)
        if user is None:
            by_token = directory.authenticate(secret)
            user = by_token if by_token is not None and by_token.name == name else None
        return user

    def callback(self, token: str) -> User | None:
        """The owner of the live session the callback token was made for."""
        session_id = self._callbacks.session_of(token)
        session = self._store.get(session_id) if session_id else None
        if session is None or not session.status.live:
            return None
        return self._users.current().get(session.user)

    def lives(self, session_id: str) -> bool:
        """Whether a session (not a desktop's app) of that id is pending or running."""
        session = self._store.get(session_id)
        return session is not None and session.parent_id is None and session.status.live

    def route_access(self, requester: User | None, session_id: str) -> RouteAccess:
        session = self._store.get(session_id)
        owner = self._users.current().get(session.user) if session is not None else None
        if session is None or session.parent_id is not None or owner is None:
            return RouteAccess.NO_SESSION
        if requester is None:
            return RouteAccess.NOT_SIGNED_IN
        return RouteAccess.ALLOWED if requester.may_open(owner) else RouteAccess.FORBIDDEN
