"""Password hashes for the users file: scrypt (standard library), salted, slow, and checked in constant time."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

SCHEME = "scrypt"
N, R, P = 2**14, 8, 1  # about 50 ms and 16 MiB per check: slow for a guesser, fine for a sign-in
_WORDS = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i: readable on a printed sheet


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=N, r=R, p=P, dklen=32)
    encode = base64.b64encode
    return f"{SCHEME}${N}${R}${P}${encode(salt).decode()}${encode(digest).decode()}"


def verify_password(stored: str | None, password: str) -> bool:
    if not stored:
        return False
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != SCHEME:
            return False
        expected = base64.b64decode(digest)
        found = hashlib.scrypt(
            password.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p), dklen=len(expected)
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(found, expected)


def new_password(length: int = 12) -> str:
    """A one-time password people can read off a sheet and type."""
    return "-".join("".join(secrets.choice(_WORDS) for _ in range(4)) for _ in range(length // 4))
