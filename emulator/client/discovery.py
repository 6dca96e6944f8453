"""How the CLI finds a running instance: the file `emulate up` (or `serve`) writes with its URL.

The file exists only while the instance is up (`down` removes it), so a command aimed at an
instance that was never started can say so instead of reaching some other instance's port.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from emulator.layout import Layout

if TYPE_CHECKING:  # the CLI's light commands import this module without the settings model
    from emulator.settings import Settings


def local_url(settings: Settings) -> str:
    """Where this machine reaches the instance (a wildcard bind address is reached on loopback, by name
    over HTTPS so the client names the certificate it wants)."""
    host = settings.host
    if host in ("0.0.0.0", "::", ""):
        host = "localhost" if settings.tls else "127.0.0.1"
    host = f"[{host}]" if ":" in host else host
    return f"{'https' if settings.tls else 'http'}://{host}:{settings.port}"


def tls_verify(layout: Layout, https: bool) -> str | bool:
    """What an HTTPS client of this instance trusts: its gateway's internal CA once there is one."""
    return str(layout.tls_ca) if https and layout.tls_ca.exists() else True


def record_url(settings: Settings) -> None:
    """Where `up` (or `serve`) put the instance: the URL this machine's clients use, and the one people are
    told (the public URL, or host:port), for commands that run later with other settings (`status`)."""
    settings.layout.instance_file.parent.mkdir(parents=True, exist_ok=True)
    settings.layout.instance_file.write_text(json.dumps({"url": local_url(settings), "base_url": settings.base_url}))


def _recorded(layout: Layout, key: str) -> str | None:
    try:
        return str(json.loads(layout.instance_file.read_text())[key])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def recorded_url(layout: Layout) -> str | None:
    """The URL recorded for this instance, or None when it is not up."""
    return _recorded(layout, "url")


def recorded_base_url(layout: Layout) -> str | None:
    """The URL `up` announced for this instance (None when it is not up; its local URL for a file an
    older `up` wrote)."""
    return _recorded(layout, "base_url") or recorded_url(layout)


def forget_url(settings: Settings) -> None:
    settings.layout.instance_file.unlink(missing_ok=True)
