"""Who is asking: a user's bearer token, or a desktop's callback token (skaha's
DESKTOP_SESSION_APP_TOKEN, sent as `x-auth-token-skaha`) while its session lives."""

from __future__ import annotations

from emulator.core.callback import CallbackTokens
from emulator.core.identity import UsersSource
from emulator.core.models import User
from emulator.core.store import Store


class Authenticator:
    def __init__(self, users: UsersSource, callbacks: CallbackTokens, store: Store) -> None:
        self._users = users
        self._callbacks = callbacks
        self._store = store

    def bearer(self, token: str) -> User | None:
        return self._users.current().authenticate(token)

    def callback(self, token: str) -> User | None:
        """The owner of the live session the callback token was made for."""
        session_id = self._callbacks.session_of(token)
        session = self._store.get(session_id) if session_id else None
        if session is None or not session.status.live:
            return None
        return self._users.current().get(session.user)
