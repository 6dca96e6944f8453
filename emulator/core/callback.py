"""Callback tokens: how a desktop calls the API back (skaha's DESKTOP_SESSION_APP_TOKEN,
sent as `x-auth-token-skaha`). A token is the session id and its HMAC under the service's key."""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

KEY_BYTES = 32


def load_key(path: Path) -> bytes:
    """The service's key, made once (mode 0600); a short key (a crash mid-write) is replaced."""
    if not path.exists() or path.stat().st_size != KEY_BYTES:
        path.parent.mkdir(parents=True, exist_ok=True)
        draft = path.with_suffix(".new")
        fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(secrets.token_bytes(KEY_BYTES))
        os.replace(draft, path)
    return path.read_bytes()


class CallbackTokens:
    def __init__(self, key_path: Path) -> None:
        self._key = load_key(key_path)

    def token(self, session_id: str) -> str:
        digest = hmac.new(self._key, session_id.encode(), hashlib.sha256).hexdigest()[:40]
        return f"{session_id}.{digest}"

    def session_of(self, token: str) -> str | None:
        """The session id a genuine token was made for, else None."""
        session_id, _, _ = token.partition(".")
        return session_id if hmac.compare_digest(self.token(session_id).encode(), token.encode()) else None
