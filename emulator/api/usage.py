"""The admins' usage accounting: GET /skaha/v1/admin/usage[?since=DATE or ISO time][&format=csv], what ended
sessions used (core/accounting.py) per user and type, and each user's totals, as JSON or CSV."""

from __future__ import annotations

import csv
import io
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import Response

from emulator.api import views
from emulator.api.audit import audit
from emulator.api.deps import AdminUser, Manager
from emulator.core.accounting import UsageLine, by_user
from emulator.errors import InvalidRequest

router = APIRouter(prefix="/skaha/v1/admin")

COLUMNS = ("user", "type", "sessions", "session_hours", "core_hours", "ram_gb_hours", "gpu_hours")
DECIMALS = 6  # hours to the 1/1000 of a second and better: sums of short sessions keep adding up


def parse_since(text: str) -> datetime:
    """A day (YYYY-MM-DD, from its midnight UTC) or an ISO time (UTC unless it names its offset)."""
    try:
        found = datetime.fromisoformat(text.strip())
        return found.replace(tzinfo=UTC) if found.tzinfo is None else found.astimezone(UTC)
    except (ValueError, OverflowError):  # not a time, or one whose UTC falls outside the calendar's years
        raise InvalidRequest(
            f"since: give a day (YYYY-MM-DD) or an ISO time (such as 2026-03-01T09:00:00Z), not {text[:40]!r}"
        ) from None


def _row(line: UsageLine) -> dict[str, Any]:
    figures = asdict(line)
    return {name: round(value, DECIMALS) if isinstance(value, float) else value for name, value in figures.items()}


def usage_document(lines: list[UsageLine], since: datetime | None, now: datetime) -> dict[str, Any]:
    """The JSON answer: each user's use of each type, then each user's totals (type "all")."""
    return {
        "since": views.iso(since) if since else None,
        "generated": views.iso(now),
        "usage": [_row(line) for line in lines],
        "totals": [_row(line) for line in by_user(lines).values()],
    }


def usage_csv(lines: list[UsageLine]) -> str:
    """The CSV answer: a header, each user's use of each type, then each user's totals (type "all")."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for line in [*lines, *by_user(lines).values()]:
        row = _row(line)
        writer.writerow([row[column] for column in COLUMNS])
    return out.getvalue()


@router.get("/usage", summary="Session-hours and core-hours of ended sessions, per user and type (admins only)")
async def usage(
    request: Request,
    admin: AdminUser,
    manager: Manager,
    since: str | None = None,
    format: Literal["json", "csv"] = "json",
) -> Response:
    start = parse_since(since) if since is not None else None
    lines = manager.usage_summary(start)
    audit(request, "usage", admin.name, since=views.iso(start) if start else None)
    if format == "csv":
        return Response(usage_csv(lines), media_type="text/csv")
    return Response(views.render(usage_document(lines, start, manager.now())), media_type="application/json")
