"""Signed-in browsers: a cookie holding the user's name and an expiry, signed with the service's key.

The cookie is HttpOnly and SameSite=Lax; form posts also carry a token derived from it (double
submit), so another site can neither read the cookie nor post as the user.

Where sessions have hosts of their own (session_hosts.py), the portal's cookie never reaches them: a
session's host gets a visit cookie of its own, good for that one session and nothing else, made from a
one-time ticket the portal hands a signed-in browser on its way there. Each kind is signed under its own
word, so no kind passes for another.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from pathlib import Path

from emulator.core.callback import load_key

LIFETIME_SECONDS = 12 * 3600
TICKET_SECONDS = 60


def cookie_name(name: str, secure: bool) -> str:
    """Over HTTPS the cookie is `__Host-` prefixed: browsers then take it only from this very host, over
    HTTPS, for the whole site, so no other host (a session's, a neighbour's) can plant one in its place."""
    return f"__Host-{name}" if secure else name


class SignIns:
    def __init__(self, key_path: Path, lifetime: int = LIFETIME_SECONDS) -> None:
        self._key = load_key(key_path)
        self.lifetime = lifetime
        self._redeemed: dict[str, float] = {}  # tickets used, until they would have expired

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

    def _issue(self, kind: str, fields: list[str], lifetime: float, now: float | None) -> str:
        body = "|".join([*fields, str(int((now or time.time()) + lifetime))])
        return f"{body}|{self._sign(f'{kind}|{body}')}"

    def _check(self, kind: str, value: str | None, count: int) -> list[str] | None:
        if not value or not value.isascii() or value.count("|") != count:
            return None
        *fields, expires, signature = value.split("|")
        body = "|".join([*fields, expires])
        if not hmac.compare_digest(self._sign(f"{kind}|{body}").encode(), signature.encode()):
            return None
        if not expires.isdigit() or int(expires) < time.time():
            return None
        return fields

    def ticket(self, user: str, fingerprint: str, session_id: str, now: float | None = None) -> str:
        """What the portal hands a signed-in browser for one session's host: good for a minute, once."""
        return self._issue("ticket", [user, fingerprint, session_id, secrets.token_hex(8)], TICKET_SECONDS, now)

    def redeem(self, ticket: str | None, session_id: str) -> tuple[str, str] | None:
        """(user, fingerprint) of a genuine, unexpired, unused ticket made for `session_id`, else None."""
        fields = self._check("ticket", ticket, 5)
        if fields is None or fields[2] != session_id or fields[3] in self._redeemed:
            return None
        self._redeemed[fields[3]] = time.time() + TICKET_SECONDS
        now = time.time()
        for nonce in [n for n, until in self._redeemed.items() if until < now]:
            del self._redeemed[nonce]
        return fields[0], fields[1]

    def visit(self, user: str, fingerprint: str, session_id: str) -> str:
        """A session host's cookie: `user` may open `session_id` (while their password and token are unchanged)."""
        return self._issue("visit", [user, fingerprint, session_id], self.lifetime, None)

    def visitor(self, cookie: str | None, session_id: str) -> tuple[str, str] | None:
        """(user, fingerprint) of a genuine, unexpired visit cookie made for `session_id`, else None."""
        fields = self._check("visit", cookie, 4)
        return (fields[0], fields[1]) if fields is not None and fields[2] == session_id else None

    def form_token(self, cookie: str) -> str:
        """What the signed-in page's forms must send back (cross-site requests cannot know it)."""
        return self._sign(f"form|{cookie}")

    def form_token_ok(self, cookie: str | None, token: str | None) -> bool:
        if not cookie or not token or not token.isascii():
            return False
        return hmac.compare_digest(self.form_token(cookie).encode(), token.encode())
