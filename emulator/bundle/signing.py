"""A bundle's optional signature: HMAC-SHA256 with a shared secret key, with the standard library only.

Why HMAC and not a public-key signature: the emulator depends on no cryptography package, and this file
must run before any virtual environment exists (`python3 -m emulator.bundle wheels FILE DIR --verify KEY`).
The cost: the key that verifies is the key that signs, so it is a secret for every machine that holds it.

What is signed: the manifest's canonical body (`Manifest.body`), which holds every other member's SHA-256
and size; the members are checked against those as they are read, so the signature covers everything.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

from emulator.bundle.archive import SIGNATURE_SCHEME, Manifest, Signature, refused
from emulator.errors import ConfigError

# 32 bytes: what `bundle keygen` writes (64 hex digits) is 256 bits; a shorter file is a password, and a
# password is guessed offline from any bundle it signed.
MIN_KEY = 32
MAX_KEY = 4096  # a key file, not a file someone named by mistake
_DOMAIN = b"skaha-emulator bundle manifest v1\n"  # so this MAC means this and nothing else


def read_key(path: Path) -> bytes:
    """A key file's secret: its bytes, surrounding white space (a trailing newline) left out."""
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_KEY + 1)
    except FileNotFoundError:
        raise ConfigError(f"no key file at {path} (make one with `emulate bundle keygen {path}`)") from None
    except OSError as exc:
        raise ConfigError(f"cannot read the key file {path}: {exc.strerror}") from None
    key = data.strip()
    if len(data) > MAX_KEY or len(key) < MIN_KEY:
        raise ConfigError(
            f"{path} is not a bundle key ({MIN_KEY} to {MAX_KEY} bytes; make one with `emulate bundle keygen`)"
        )
    return key


def make_key(path: Path) -> str:
    """A new random key in a new file only its owner may read (an existing file is never overwritten);
    its key id."""
    key = secrets.token_hex(32).encode()
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise ConfigError(f"{path} exists already: a key is never overwritten (remove it first)") from None
    except OSError as exc:
        raise ConfigError(f"cannot write the key file {path}: {exc.strerror}") from None
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(key + b"\n")
    return key_id(key)


def key_id(key: bytes) -> str:
    """A key's fingerprint, stored beside the MAC so a bundle signed with another key says so."""
    return hashlib.sha256(b"skaha-emulator bundle key id\n" + key).hexdigest()[:16]


def _mac(manifest: Manifest, key: bytes) -> str:
    return hmac.new(key, _DOMAIN + manifest.body(), hashlib.sha256).hexdigest()


def sign(manifest: Manifest, key: bytes) -> Signature:
    """The signature of a manifest whose parts are all hashed already."""
    return Signature(SIGNATURE_SCHEME, key_id(key), _mac(manifest, key))


def check(path: Path, manifest: Manifest, key: bytes) -> None:
    """Refuse, in one line, a bundle that is unsigned, signed with another key, or altered since."""
    signature = manifest.signature
    if signature is None:
        raise refused(path, "it is not signed, and --verify asks for a signature")
    if not hmac.compare_digest(signature.key, key_id(key)):
        raise refused(path, f"it is signed with another key ({signature.key}; this key is {key_id(key)})")
    if not hmac.compare_digest(signature.mac, _mac(manifest, key)):
        raise refused(path, "its signature does not match its manifest: it was altered after it was signed")
