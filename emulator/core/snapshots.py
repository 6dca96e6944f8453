"""Sessions saved as images (`emulate snapshot`, `POST /session/<id>?action=snapshot`): what a user installed in
a running session outside /arc, which CANFAR loses when the session ends, kept as an image they can launch.

The rules, pure: a snapshot's name lives under `snapshot/<its owner>/`, a namespace this server keeps for
snapshots. Such a name is shown to (GET /image, the portal's menu) and launched by the image's owner alone (its
labels say whose, in which instance); to anyone else it answers as a name that is not here, and it is never
pulled (a registry's image could otherwise take a snapshot's name). A snapshot has the configuration of the
image the session ran, not the session's, and the session type's label (runtime/snapshots.py).

`Snapshots.save` is the verb: the session must be the caller's, interactive and Running; the name valid and
free (or a snapshot of theirs, which it replaces); their count under EMULATE_MAX_SNAPSHOTS; the disk not
nearly full. Every refusal comes before the engine is asked to commit anything.
"""

from __future__ import annotations

import asyncio
import re
from datetime import datetime

from docker_image.reference import InvalidReference, Reference

from emulator import labels
from emulator.core import policy
from emulator.core.disk import DiskWatch
from emulator.core.locks import SessionLocks
from emulator.core.models import Session, Status, User
from emulator.core.record import SessionRecord
from emulator.core.store import Store
from emulator.errors import InvalidRequest, NotFound
from emulator.profiles import Profile
from emulator.runtime.base import ImageInfo, Runtime, SnapshotRequest
from emulator.settings import Settings

NAMESPACE = "snapshot"
_NORMALIZED_NAMESPACE = f"docker.io/{NAMESPACE}/"
_NOT_A_COMPONENT = re.compile(r"[^a-z0-9]+")


def user_namespace(user: str) -> str:
    """`snapshot/<user>`: a user name as an image path component allows it (`a.b` -> `a-b`)."""
    return f"{NAMESPACE}/{_NOT_A_COMPONENT.sub('-', user.lower()).strip('-') or 'user'}"


def in_namespace(reference: str) -> bool:
    """Whether a reference names a snapshot (`snapshot/...`, on no registry)."""
    try:
        return str(Reference.parse_normalized_named(reference)["name"]).startswith(_NORMALIZED_NAMESPACE)
    except (InvalidReference, ValueError):
        return False


def owned_by(image_labels: dict[str, str], user: str, instance: str) -> bool:
    """The image is a snapshot this user of this instance saved."""
    return image_labels.get(labels.SNAPSHOT_OWNER) == user and image_labels.get(labels.SNAPSHOT_INSTANCE) == instance


def visible(reference: str, image_labels: dict[str, str], user: str, instance: str) -> bool:
    """Whether this user may see and launch the image under this name: any name outside the namespace (the
    platform's rules apply), a snapshot's name only its owner."""
    return not in_namespace(reference) or owned_by(image_labels, user, instance)


def launchable(image: ImageInfo | None, user: str, instance: str) -> bool:
    """Whether the image a snapshot's name names is here and this user's."""
    return image is not None and owned_by(image.labels, user, instance)


def not_here(reference: str) -> str:
    """The one answer to a launch of a snapshot's name that is not the caller's: the same as for one not there."""
    return (
        f"image '{policy.shown(reference)}' is not here: {NAMESPACE}/ names are images saved from sessions on this "
        "server (emulate snapshot), each launched by its owner alone, and never pulled"
    )


def _repository(image: str) -> str:
    """The last part of an image's name (`images.canfar.net/skaha/astroml:1` -> `astroml`)."""
    try:
        name = str(Reference.parse_normalized_named(image)["name"])
    except (InvalidReference, ValueError):
        name = image
    return name.rsplit("/", 1)[-1].split(":", 1)[0].split("@", 1)[0] or "session"


def snapshot_name(user: str, tag: str | None, session: Session, when: datetime) -> str:
    """The new image's name: `snapshot/<user>/<image's name>:<session name>-<UTC time>` by default; `tag` gives
    `name[:tag]` under the user's namespace, or a whole name in it (`:latest` when it has no tag)."""
    home = user_namespace(user)
    if not tag:
        return f"{home}/{_repository(session.image)}:{session.name}-{when:%Y%m%d-%H%M%S}"
    wanted = tag if "/" in tag else f"{home}/{tag}"
    problem = policy.reference_problem(wanted)
    if problem is None and "@" in wanted:
        problem = "a snapshot is named by a tag, not a digest"
    if problem is not None:
        raise InvalidRequest(
            f"snapshot name '{policy.shown(tag)}' is not a valid image name (name[:tag], or "
            f"{home}/name[:tag]): {problem}"
        )
    if not wanted.startswith(f"{home}/"):
        raise InvalidRequest(
            f"snapshot name '{policy.shown(tag)}' is outside your snapshots: give name[:tag], or {home}/name[:tag]"
        )
    return wanted if Reference.parse_normalized_named(wanted)["tag"] else f"{wanted}:latest"


def snapshot_labels(
    original: dict[str, str], session: Session, user: str, instance: str, when: datetime
) -> dict[str, str]:
    """The image's labels: the original image's (but not how it was built: a snapshot was not built from a
    recipe), its session types (those it declared, when they include the session's, else the session's alone),
    a description, and whose snapshot it is, of what."""
    kept = {key: value for key, value in original.items() if key not in labels.BUILD_LABELS}
    declared = labels.image_session_types(original)
    types = declared if declared and session.type in declared else [session.type.value]
    kept.update(
        {
            labels.IMAGE_SESSION_TYPES: ",".join(types),
            labels.IMAGE_DESCRIPTION: f"{session.name} saved from {session.image} at {when:%Y-%m-%d %H:%M} UTC",
            labels.SNAPSHOT_OWNER: user,
            labels.SNAPSHOT_INSTANCE: instance,
            labels.SNAPSHOT_SESSION: session.id,
            labels.SNAPSHOT_IMAGE: session.image,
        }
    )
    return kept


def saveable(session: Session | None, user: User, session_id: str, profile: Profile | None) -> Session:
    """The caller's session, when it may be saved: the caller's own (another's is as missing as none), not a
    desktop-app (saved with its desktop, it is not a session of the API), interactive, and Running."""
    if session is None or session.user != user.name or session.parent_id is not None:
        raise NotFound(f"session {session_id} not found")
    if profile is None or profile.batch or not profile.interactive:
        raise InvalidRequest(
            f"session {session_id} is a {session.type} job: only interactive sessions (a notebook, a desktop...) "
            "are saved as images; install in a notebook, save it, and run jobs from its image"
        )
    if session.status is not Status.RUNNING:
        raise InvalidRequest(f"session {session_id} is {session.status}: only a Running session is saved as an image")
    return session


class Snapshots:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        runtime: Runtime,
        profiles: dict[str, Profile],
        record: SessionRecord,
        locks: SessionLocks,
        disk: DiskWatch,
    ) -> None:
        self._settings = settings
        self._store = store
        self._runtime = runtime
        self._profiles = profiles
        self._record = record
        self._locks = locks
        self._disk = disk
        self._users: dict[str, asyncio.Lock] = {}  # one snapshot at a time per user: its name and count hold

    def _session(self, user: User, session_id: str) -> Session:
        session = self._store.get(session_id)
        return saveable(session, user, session_id, self._profiles.get(session.type) if session else None)

    async def save(self, user: User, session_id: str, tag: str | None) -> str:
        """Save the caller's Running session as an image; its name."""
        session = self._session(user, session_id)
        when = self._record.now()  # the clock the session's events are on
        name = snapshot_name(user.name, tag, session, when)
        async with self._users.setdefault(user.name, asyncio.Lock()):
            self._disk.check("saving an image")
            container = self._record.container_name(session)
            original = await self._runtime.container_image(container)
            if original is None:
                raise InvalidRequest(f"session {session_id} has no container: only a Running session is saved")
            if self._store.is_private(session.image, original.id):
                raise InvalidRequest(
                    f"session {session_id} runs an image that needed registry credentials: saved, it would run "
                    "without them, so it is not saved"
                )
            await self._check_room(user, name)
            note = f"emulate snapshot of session {session.id} ({session.name}) of {user.name}"
            saved_labels = snapshot_labels(original.labels, session, user.name, self._instance, when)
            request = SnapshotRequest(container, original.id, name, saved_labels, note)
            async with self._locks.of(session.id):  # a delete meanwhile waits for the copy, then removes it
                self._session(user, session_id)
                await self._runtime.snapshot(request)
        self._record.event(session.id, "Saved", f"Saved as image {name} (its files outside /arc and /scratch)")
        return name

    @property
    def _instance(self) -> str:
        return self._settings.instance

    async def _check_room(self, user: User, name: str) -> None:
        """The name is free or one of the user's snapshots (replaced), and a new one stays within their count."""
        existing = await self._runtime.image(name)
        if existing is not None and not owned_by(existing.labels, user.name, self._instance):
            raise InvalidRequest(f"image '{name}' is here already and is not a snapshot of yours: choose another tag")
        if existing is not None:
            return
        images = await self._runtime.images()
        # Counted by name as well as labels: a pulled image may carry any labels, but no pull makes a snapshot's name.
        mine = [
            image
            for image in images
            if owned_by(image.labels, user.name, self._instance) and any(in_namespace(tag) for tag in image.tags)
        ]
        most = self._settings.max_snapshots
        if len(mine) >= most:
            raise InvalidRequest(
                f"you have {len(mine)} saved images, the most this server keeps per user "
                f"(EMULATE_MAX_SNAPSHOTS={most}): replace one by giving its name as the tag"
            )
