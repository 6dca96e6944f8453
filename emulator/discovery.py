"""How the CLI finds a running instance: the file `emulate up` (or `serve`) writes with its URL.

The file exists only while the instance is up (`down` removes it), so a command aimed at an
instance that was never started can say so instead of reaching some other instance's port.
"""

from __future__ import annotations

import json

from emulator.settings import Settings


def record_url(settings: Settings) -> None:
    settings.instance_file.parent.mkdir(parents=True, exist_ok=True)
    settings.instance_file.write_text(json.dumps({"url": settings.base_url}))


def recorded_url(settings: Settings) -> str | None:
    """The URL recorded for this instance, or None when it is not up."""
    try:
        return str(json.loads(settings.instance_file.read_text())["url"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def forget_url(settings: Settings) -> None:
    settings.instance_file.unlink(missing_ok=True)
