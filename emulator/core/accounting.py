"""Usage accounting: session-hours and core-hours per user and per session type, from what the store kept of
each session as it ended (never recomputed from containers, which are gone by then).

A session's hours run from its start to its end; core-hours are its cores request times its hours (what it
was given: a flexible session may have used more, up to its limit, or less). With `since`, only the part of
each session after that moment counts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class UsageLine:
    user: str
    type: str
    sessions: int
    session_hours: float
    core_hours: float
    ram_gb_hours: float
    gpu_hours: float


def summarize(records: Iterable[Mapping[str, Any]], since: datetime | None = None) -> list[UsageLine]:
    """One line per (user, type) with what their sessions used, sorted by user then type. `records`: the
    store's usage rows (session_id, user, type, started, ended, cores, ram_gb, gpus)."""
    totals: dict[tuple[str, str], list[float]] = {}
    for record in records:
        started = datetime.fromisoformat(record["started"])
        ended = datetime.fromisoformat(record["ended"])
        if since is not None:
            started = max(started, since)
        hours = max(0.0, (ended - started).total_seconds() / 3600)
        line = totals.setdefault((record["user"], record["type"]), [0, 0.0, 0.0, 0.0, 0.0])
        line[0] += 1
        line[1] += hours
        line[2] += hours * record["cores"]
        line[3] += hours * record["ram_gb"]
        line[4] += hours * record["gpus"]
    return [
        UsageLine(user, type_, int(n), session_h, core_h, ram_h, gpu_h)
        for (user, type_), (n, session_h, core_h, ram_h, gpu_h) in sorted(totals.items())
    ]


def by_user(lines: Iterable[UsageLine]) -> dict[str, UsageLine]:
    """The lines of each user added up across types (type "all")."""
    found: dict[str, UsageLine] = {}
    for line in lines:
        kept = found.get(line.user)
        found[line.user] = (
            line
            if kept is None
            else UsageLine(
                line.user,
                "all",
                kept.sessions + line.sessions,
                kept.session_hours + line.session_hours,
                kept.core_hours + line.core_hours,
                kept.ram_gb_hours + line.ram_gb_hours,
                kept.gpu_hours + line.gpu_hours,
            )
        )
    return {user: UsageLine(user, "all", *_figures(line)) for user, line in found.items()}


def _figures(line: UsageLine) -> tuple[int, float, float, float, float]:
    return line.sessions, line.session_hours, line.core_hours, line.ram_gb_hours, line.gpu_hours
