"""The faces' way to the audit log (core/audit.py): who asked, and from which address, as the gateway saw it.

`audit` writes one line; `audited` wraps a verb so that its line says how it went (ok, or refused or failed
with the reason's first words, never a value the request carried), for every face (the API, the portal, the
admin API and page); `launch_audited` does that for a launch; `PlatformAudit` writes what the platform itself
did (an expired session removed).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from fastapi import Request

from emulator.api.access import client_address
from emulator.core.audit import AuditLog, Value, first_words
from emulator.core.models import LaunchRequest, Session, User
from emulator.core.observers import Observer
from emulator.errors import EmulatorError

PLATFORM = "platform"  # who, in the lines of what the platform did by itself


def audit(request: Request, action: str, who: str | None, outcome: str = "ok", **details: Value) -> None:
    """One line in the audit log for what `who` did through this request."""
    log: AuditLog = request.app.state.audit
    log.record(action, who, client_address(request), outcome, **details)


def outcome_of(error: EmulatorError) -> str:
    """A refusal of the caller's request (4xx) or a failure of the platform's (5xx)."""
    return "refused" if error.status_code < 500 else "failed"


@contextmanager
def audited(
    request: Request, action: str, who: str | None, withheld: Iterable[str] = (), **details: Value
) -> Iterator[dict[str, Value]]:
    """One line for the verb the block runs: ok, with what the block adds to the dict it is given (the new
    session's id; what it adds replaces a detail of the same name); or, when it raises an EmulatorError, refused
    or failed with the reason's first words, none of the `withheld` values in them (then the error goes on to
    the face's own handling)."""
    found: dict[str, Value] = {}
    try:
        yield found
    except EmulatorError as exc:
        reason = first_words(exc.message, withheld)
        audit(request, action, who, outcome_of(exc), **(details | found), reason=reason)
        raise
    audit(request, action, who, "ok", **(details | found))


def _sent(wanted: LaunchRequest) -> list[str]:
    """What a launch carried that may be someone's secret: its env entries and their values, its command and
    arguments, its registry header."""
    values = [*wanted.env, *(entry.partition("=")[2] for entry in wanted.env)]
    return [v for v in (*values, wanted.cmd, wanted.args, wanted.registry_auth) if v]


@contextmanager
def launch_audited(request: Request, user: User, wanted: LaunchRequest) -> Iterator[dict[str, Value]]:
    """A launch's audit line: its type and image (the block adds the session's id), none of what it sent that
    may be a secret."""
    details: dict[str, Value] = {"type": wanted.type or "headless", "image": wanted.image, "name": wanted.name}
    with audited(request, "launch", user.name, _sent(wanted), **details) as line:
        yield line


class PlatformAudit(Observer):
    """The lines of what the platform did by itself: housekeeping removing a session that expired, idle culling one
    nobody used."""

    def __init__(self, log: AuditLog) -> None:
        self._log = log

    def session_expired(self, session: Session) -> None:
        details: dict[str, Value] = {"session": session.id, "type": str(session.type), "user": session.user}
        self._log.record("delete", PLATFORM, None, "ok", **details, reason="expired")

    def session_idle_culled(self, session: Session) -> None:
        details: dict[str, Value] = {"session": session.id, "type": str(session.type), "user": session.user}
        self._log.record("idle-cull", PLATFORM, None, "ok", **details)
