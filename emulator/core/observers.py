"""What the brain tells whoever watches the platform (the service's metrics, its audit log) as it happens,
without knowing who they are: a session failed, and why in one word of a closed list; an image pull finished,
with the bytes it downloaded; housekeeping removed a session that expired; idle culling removed one nobody used.

An observer overrides what it cares for; `Observers` tells each of them. Nothing an observer does can stop
the platform's own work: its failure is logged and the others are still told.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable

from emulator.core.models import Session

log = logging.getLogger(__name__)


class FailureCause(enum.StrEnum):
    """Why a session failed, in a word: few enough to label a metric with (never the event's own text)."""

    IMAGE_PULL = "image-pull"  # its image could not be pulled, or is gone
    START_UP = "start-up"  # its container could not be made or started, or placed on a machine
    NEVER_READY = "never-ready"  # it started but never answered its readiness probe
    EXITED = "exited"  # its container exited with an error
    OOM = "oom"  # the kernel's OOM killer ended it (or an OOM fault asked for)
    VANISHED = "vanished"  # its container disappeared
    QUOTA = "quota"  # the platform stopped it: its owner's home reached its quota


class Observer:
    """Told of what happens on the platform; each method does nothing unless overridden."""

    def session_failed(self, session: Session, cause: FailureCause) -> None:
        """`session` (as it was before it failed) is Failed now, for `cause`."""

    def image_pulled(self, downloaded_bytes: int) -> None:
        """A pull finished, having downloaded this many bytes (layers already here download none)."""

    def session_expired(self, session: Session) -> None:
        """Housekeeping removes `session`: its expiry time has passed."""

    def session_idle_culled(self, session: Session) -> None:
        """Idle culling removed `session`: nobody used it through the gateway for EMULATE_IDLE_CULL_HOURS."""


class Observers(Observer):
    """Every observer the service added, each told in turn."""

    def __init__(self) -> None:
        self._watching: list[Observer] = []

    def add(self, observer: Observer) -> None:
        self._watching.append(observer)

    def _tell(self, what: str, told: Callable[[Observer], None]) -> None:
        for observer in self._watching:
            try:
                told(observer)
            except Exception:  # an observer's trouble is never the platform's
                log.exception("an observer of %s failed", what)

    def session_failed(self, session: Session, cause: FailureCause) -> None:
        self._tell("a failed session", lambda o: o.session_failed(session, cause))

    def image_pulled(self, downloaded_bytes: int) -> None:
        self._tell("a pull", lambda o: o.image_pulled(downloaded_bytes))

    def session_expired(self, session: Session) -> None:
        self._tell("an expiry", lambda o: o.session_expired(session))

    def session_idle_culled(self, session: Session) -> None:
        self._tell("an idle cull", lambda o: o.session_idle_culled(session))
