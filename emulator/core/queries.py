"""What the faces read besides sessions, worked out from what the store and the engine say: the platform's
load (skaha's view=stats), the machines sessions run on, and the catalogue of launchable images."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from emulator import labels
from emulator.core.models import GIB, CatalogueEntry, HostFacts, PlatformStats, Session, Status
from emulator.profiles import Profile
from emulator.runtime.base import ImageInfo, NodeInfo
from emulator.runtime.local_names import listed_name


def platform_stats(sessions: list[Session], profiles: dict[str, Profile], host: HostFacts) -> PlatformStats:
    """What the running sessions are, and what they asked for, against what there is."""
    running = [s for s in sessions if s.status is Status.RUNNING]
    by_kind = {"interactive": 0, "apps": 0, "batch": 0}
    for session in running:
        profile = profiles.get(session.type)
        kind = "batch" if profile and profile.batch else "apps" if session.parent_id else "interactive"
        by_kind[kind] += 1
    return PlatformStats(
        interactive=by_kind["interactive"],
        desktop_apps=by_kind["apps"],
        headless=by_kind["batch"],
        requested_cores=sum(s.resources.cores_request for s in running),
        requested_ram_gb=sum(s.resources.ram_request_gb for s in running),
        capacity=host.capacity,
        requested_gpus=sum(s.resources.gpus for s in running),
        gpus=len(host.gpu_devices) or host.capacity.gpus,
    )


def with_sessions(machine: NodeInfo, stats: PlatformStats) -> NodeInfo:
    """The one machine sessions run on, with what its running sessions asked for."""
    return replace(
        machine,
        reserved_cores=stats.requested_cores,
        reserved_memory_bytes=int(stats.requested_ram_gb * GIB),
        sessions=stats.interactive + stats.desktop_apps + stats.headless,
        gpus=stats.gpus,
        reserved_gpus=stats.requested_gpus,
    )


def catalogue(
    images: list[ImageInfo],
    private: set[str],
    session_type: str | None,
    shown: Callable[[str, dict[str, str]], bool] = lambda name, image_labels: True,
) -> list[CatalogueEntry]:
    """Local images labelled with session types (of one type, if given), by name; `private`: the ids of
    images that arrived with somebody's registry credentials; `shown`: whether the caller may see the image
    under a name (a snapshot's name, its owner alone). A name without a registry is listed under localhost/
    (runtime/local_names.py), which launches it too."""
    entries: list[CatalogueEntry] = []
    for image in images:
        types = labels.image_session_types(image.labels)
        if types is None or not image.tags or image.id in private:
            continue  # like Harbor: unlabelled artifacts are invisible, and so are private ones
        if session_type is None or session_type in types:
            description = image.labels.get(labels.IMAGE_DESCRIPTION, "")
            # Every name an image goes by is launchable (a CANFAR name given with `docker tag` too), each listed
            # once, as skaha lists it (registry/project/name:tag: a local one under localhost/).
            names = {listed_name(tag) for tag in image.tags if shown(tag, image.labels)}
            entries.extend(CatalogueEntry(name, types, image.digest, description) for name in names)
    return sorted(entries, key=lambda entry: entry.id)
