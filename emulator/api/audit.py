"""The faces' way to the audit log (core/audit.py): who asked, and from which address, as the gateway saw it."""

from __future__ import annotations

from fastapi import Request

from emulator.core.audit import AuditLog, Value


def client_address(request: Request) -> str | None:
    """The client as the gateway saw it: the last X-Forwarded-For entry is the gateway's own (anything before
    it is what the client claimed)."""
    forwarded = request.headers.get("x-forwarded-for", "")
    if forwarded:
        return forwarded.rsplit(",", 1)[-1].strip() or None
    return request.client.host if request.client else None


def audit(request: Request, action: str, who: str | None, outcome: str = "ok", **details: Value) -> None:
    """One line in the audit log for what `who` did through this request."""
    log: AuditLog = request.app.state.audit
    log.record(action, who, client_address(request), outcome, **details)
