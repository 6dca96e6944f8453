"""skaha's JSON shapes (field names, order, "<none>" placeholders), v0 and v1."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from emulator.core.models import GIB, CatalogueEntry, Event, PlatformStats, Session, Status, User
from emulator.runtime.base import NodeInfo, Usage
from emulator.runtime.engine import LimitSupport
from emulator.session_types import SessionType

NONE = "<none>"


def iso(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def when(moment: datetime) -> str:
    """A UTC time as pages show it: "2026-03-01 09:00:00 UTC"."""
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def duration(seconds: int) -> str:
    """A length of time in words: "3 d 4 h", "2 h 5 min", "0 h 5 min"."""
    days, rest = divmod(max(0, seconds), 86400)
    hours, rest = divmod(rest, 3600)
    return f"{days} d {hours} h" if days else f"{hours} h {rest // 60} min"


def ago(then: datetime | None, now: datetime) -> str:
    """How long ago, in words: "just now", "3 min ago", "2 h 5 min ago", "3 d 4 h ago"; None: "none yet"."""
    if then is None:
        return "none yet"
    seconds = int((now - then).total_seconds())
    if seconds < 3600:
        return f"{seconds // 60} min ago" if seconds >= 60 else "just now"
    return f"{duration(seconds)} ago"


def number(value: float) -> str:
    """Cores as skaha prints them: 1 -> "1", 0.25 -> "0.25"."""
    return f"{value:g}"


def status_word(status: Status, version: str) -> str:
    if version == "v1" and status is Status.SUCCEEDED:
        return "Completed"
    return status.value


def session_json(
    session: Session, user: User, connect_url: str, usage: Usage | None, version: str, jobs_ahead: int | None = None
) -> dict[str, Any]:
    """`jobs_ahead`: a job waiting in the queue, how many jobs wait ahead of it (its status is Pending, as
    CANFAR shows a job Kueue holds)."""
    r = session.resources
    gpu_memory = usage.gpu_memory_bytes if usage else None
    document: dict[str, Any] = {
        "id": session.parent_id or session.id,
        "userid": session.user,
        "runAsUID": str(user.uid),
        "runAsGID": str(user.gid),
        "supplementalGroups": user.supplementary_gids,
        "appid": session.app_id or NONE,
        "image": session.image,
        "type": session.type,
        "status": status_word(session.status, version),
        "name": session.name,
        "startTime": iso(session.start_time),
        "expiryTime": iso(session.expiry_time),
        # skaha v1 leaves a headless job's empty; v0 says "not-applicable".
        "connectURL": connect_url if session.type != SessionType.HEADLESS or version == "v0" else "",
        "requestedRAM": f"{number(r.ram_request_gb)}G",
        "requestedCPUCores": number(r.cores_request),
        "requestedGPUCores": str(r.gpus) if r.gpus else (NONE if version == "v0" else "0"),
        "ramInUse": f"{round(usage.memory_bytes / 1024**2)}M" if usage else NONE,
        "gpuRAMInUse": f"{round(gpu_memory / 1024**2)}M" if gpu_memory is not None else NONE,
        "cpuCoresInUse": f"{usage.cpu_cores:.3f}" if usage else NONE,
        "gpuUtilization": f"{usage.gpu_utilization:.0f}%" if usage and usage.gpu_utilization is not None else NONE,
    }
    if session.mounts:  # the emulator's own: host folders mounted into it (`emulate dev --mount`)
        document["mounts"] = [str(m) for m in session.mounts]
    if jobs_ahead is not None:  # the emulator's own: its place in the queue (`emulate ps` shows it)
        document["jobsAhead"] = jobs_ahead
    if version == "v1":
        document["isFixedResources"] = r.fixed
        if not r.fixed:
            # v1 fills the requested figures only for fixed sessions (null fields are omitted).
            del document["requestedRAM"], document["requestedCPUCores"]
    return document


def public_json(session: Session, version: str) -> dict[str, Any]:
    return {
        "userid": session.user,
        "type": session.type,
        "status": status_word(session.status, version),
        "startTime": iso(session.start_time),
    }


def render(document: Any) -> str:
    """Gson pretty printing, HTML escaping off."""
    return json.dumps(document, indent=2, ensure_ascii=False)


def events_table(events: list[Event]) -> str:
    """kubectl's custom-columns table, or "<none>" when there are no events."""
    if not events:
        return f"{NONE}\n"
    rows = [("TYPE", "REASON", "MESSAGE", "FIRST-TIME", "LAST-TIME")]
    rows += [(e.type, e.reason, e.message, iso(e.first_time), iso(e.last_time)) for e in events]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = ["   ".join(cell.ljust(widths[i]) if i < 4 else cell for i, cell in enumerate(row)) for row in rows]
    return "\n".join(lines) + "\n"


def catalogue_json(entry: CatalogueEntry) -> dict[str, Any]:
    return {"id": entry.id, "types": entry.types, "digest": entry.digest}


def node_json(node: NodeInfo) -> dict[str, Any]:
    """A machine sessions run on (our own addition to view=stats)."""
    return {
        "name": node.name,
        "state": node.state,
        "available": node.available,
        "manager": node.manager,
        "cores": node.cores,
        "coresReserved": round(node.reserved_cores, 3),
        "ramGB": round(node.memory_bytes / GIB, 1),
        "ramReservedGB": round(node.reserved_memory_bytes / GIB, 1),
        "sessions": node.sessions,
        "gpus": node.gpus,
        "gpusReserved": node.reserved_gpus,
    }


def limits_json(limits: LimitSupport) -> dict[str, Any]:
    """Which of the sessions' limits the engine enforces (our own addition to view=stats)."""
    return {"memory": limits.memory, "cpu": limits.cpu, "pids": limits.pids, "whyNot": limits.why_not}


def stats_json(
    stats: PlatformStats,
    host: tuple[float, float] | None = None,
    nodes: list[NodeInfo] | None = None,
    limits: LimitSupport | None = None,
) -> dict[str, Any]:
    """skaha's view=stats; `host`: the machine's cores and GB in use now, `nodes`: the machines sessions run
    on, `limits`: which limits the engine enforces (our own additions)."""
    cores = float(stats.capacity.cores)
    memory = f"{int(stats.capacity.memory_gb)}G"
    document: dict[str, Any] = {
        "instances": {
            "session": stats.interactive,
            "desktopApp": stats.desktop_apps,
            "headless": stats.headless,
            "total": stats.interactive + stats.desktop_apps + stats.headless,
        },
        "cores": {
            "requestedCPUCores": stats.requested_cores,
            "cpuCoresAvailable": cores,
            "maxCPUCores": {"cpuCores": cores, "withRam": memory},
        },
        "ram": {
            "requestedRAM": f"{number(stats.requested_ram_gb)}G",
            "ramAvailable": memory,
            "maxRAM": {"ram": memory, "withCPUCores": cores},
        },
    }
    if stats.gpus:  # the canfar client shows these when they are there
        document["gpu"] = {"requestedGPU": stats.requested_gpus, "gpuAvailable": stats.gpus}
    if host is not None:  # the emulator's own: what the whole machine uses now (skaha has no such figure)
        document["host"] = {"cpuCoresInUse": round(host[0], 2), "ramInUse": f"{host[1]:.1f}G"}
    if nodes is not None:
        document["nodes"] = [node_json(node) for node in nodes]
    if limits is not None:
        document["limits"] = limits_json(limits)
    return document
