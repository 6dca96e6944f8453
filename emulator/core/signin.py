"""Signed-in browsers: a cookie holding the user's name and an expiry, signed with the service's key.

The cookie is HttpOnly and SameSite=Lax; form posts also carry a token derived from it (double
submit), so another site can neither read the cookie nor post as the user.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from pathlib import Path

from emulator.core.callback import load_key

COOKIE = "skaha_emulator_session"
LIFETIME_SECONDS = 12 * 3600


class SignIns:
    def __init__(self, key_path: Path, lifetime: int = LIFETIME_SECONDS) -> None:
        self._key = load_key(key_path)
        self.lifetime = lifetime

    def _sign(self, text: str) -> str:
        return hmac.new(self._key, text.encode(), hashlib.sha256).hexdigest()

    def issue(self, user: str, fingerprint: str, now: float | None = None) -> str:
        """`fingerprint` changes with the user's password and token (see UserDirectory.fingerprint)."""
        expires = int((now or time.time()) + self.lifetime)
        body = f"{user}|{fingerprint}|{expires}"
        return f"{body}|{self._sign(body)}"

    def _parts(self, cookie: str | None, now: float | None = None) -> list[str] | None:
        if not cookie or cookie.count("|") != 3 or not cookie.isascii():
            return None
        user, fingerprint, expires, signature = cookie.split("|")
        if not hmac.compare_digest(self._sign(f"{user}|{fingerprint}|{expires}").encode(), signature.encode()):
            return None
        if not expires.isdigit() or int(expires) < (now or time.time()):
            return None
        return [user, fingerprint]

    def user_of(self, cookie: str | None, now: float | None = None) -> str | None:
        """The user a genuine, unexpired cookie names, else None."""
        parts = self._parts(cookie, now)
        return parts[0] if parts else None

    def fingerprint_ok(self, cookie: str | None, fingerprint: str) -> bool:
        parts = self._parts(cookie)
        return parts is not None and hmac.compare_digest(parts[1].encode(), fingerprint.encode())

    def form_token(self, cookie: str) -> str:
        """What the signed-in page's forms must send back (cross-site requests cannot know it)."""
        return self._sign(f"form|{cookie}")

    def form_token_ok(self, cookie: str | None, token: str | None) -> bool:
        if not cookie or not token or not token.isascii():
            return False
        return hmac.compare_digest(self.form_token(cookie).encode(), token.encode())
