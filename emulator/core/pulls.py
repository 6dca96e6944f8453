"""Images pulled on demand, as the kubelet pulls them: one pull per image and credentials, shared by
every launch that waits for it, with its progress (layers and bytes) readable while it runs (`ImagePulls`).

`SessionPulls` is a session's side of it: whether its launch must pull (checked before admission), the
pull its bring-up then makes with the launch's credentials, told in the kubelet's events, and its progress;
and a pull that fails because the launch asked it to (fault=pull), told in the same words as a real one.

Credentials live only in the pull's key and task, in memory, for as long as the pull runs (and, before it,
in the session's pull request).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from emulator.core import policy, snapshots
from emulator.core.models import FaultKind, Session
from emulator.core.observers import FailureCause
from emulator.core.record import SessionRecord
from emulator.core.registries import RegistryPolicy
from emulator.core.store import Store
from emulator.errors import ImagePullError, InvalidRequest
from emulator.runtime.base import ImageInfo, PullUpdate, RegistryCredentials, Runtime
from emulator.runtime.local_names import local_name
from emulator.runtime.pull_failures import pull_failure
from emulator.settings import Settings

log = logging.getLogger(__name__)

_DONE = ("Pull complete", "Already exists")
_HAVE_BYTES = ("Download complete", "Verifying Checksum", "Extracting", "Pull complete")
MB = 1000 * 1000
FAULT_PULL_SECONDS = 1.0  # a registry takes a moment to say it has no such image: the session is Pending meanwhile
# skaha's words when an image it does not hold is launched without credentials (v0 SessionAction).
CREDENTIALS_NEEDED = (
    "No authentication provided for unknown or private image.  "
    "Use x-skaha-registry-auth request header with base64Encode(username:secret)."
)


@dataclass
class _Layer:
    status: str = ""
    current: int = 0
    total: int = 0


@dataclass
class PullProgress:
    """How far one pull has come. Updated on the engine's worker thread as its stream arrives (under
    a lock, so the event loop is not woken for each of its many lines) and read on the loop."""

    image: str
    started: float = field(default_factory=time.monotonic)
    layers: dict[str, _Layer] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def update(self, update: PullUpdate) -> None:
        with self._lock:
            layer = self.layers.setdefault(update.layer, _Layer())
            layer.status = update.status
            if update.status == "Downloading" and update.total:
                layer.current, layer.total = update.current, update.total
            elif update.status in _HAVE_BYTES:
                layer.current = layer.total  # its bytes are all here; Extracting counts a different size

    def downloaded(self) -> int:
        """The bytes downloaded so far (layers present already have none)."""
        with self._lock:
            return sum(x.current for x in self.layers.values())

    def summary(self) -> dict[str, object]:
        """Layers done of all, and bytes downloaded of those known so far (layers present already have none)."""
        with self._lock:
            layers = [_Layer(x.status, x.current, x.total) for x in self.layers.values()]
        return {
            "image": self.image,
            "layers": {"done": sum(1 for x in layers if x.status in _DONE), "total": len(layers)},
            "bytes": {"current": sum(x.current for x in layers), "total": sum(x.total for x in layers)},
            "seconds": round(time.monotonic() - self.started, 1),
        }


@dataclass
class _Pull:
    task: asyncio.Task[ImageInfo]
    progress: PullProgress


PullKey = tuple[str, RegistryCredentials | None]  # one pull per image name and credentials


class ImagePulls:
    def __init__(self, runtime: Runtime, on_pulled: Callable[[int], None] = lambda downloaded: None) -> None:
        """`on_pulled`: told the bytes each pull that succeeded downloaded, once per pull (however many waited)."""
        self._runtime = runtime
        self._on_pulled = on_pulled
        self._pulls: dict[PullKey, _Pull] = {}

    async def pull(self, reference: str, credentials: RegistryCredentials | None) -> ImageInfo:
        """The image, pulled now or by the pull of it already running with the same credentials.

        The same image with other credentials is another pull: sharing would let one person's
        secret serve another's launch."""
        key = (reference, credentials)
        pull = self._pulls.get(key)
        if pull is None:
            progress = PullProgress(reference)
            pulling = self._runtime.pull(reference, credentials, progress.update)
            task = asyncio.create_task(pulling, name=f"pull {reference}")
            pull = self._pulls[key] = _Pull(task, progress)
            task.add_done_callback(lambda done: self._finished(key, done, progress))
        # Shielded: one waiting launch that is cancelled (its session deleted) never stops the others' pull.
        return await asyncio.shield(pull.task)

    def _finished(self, key: PullKey, task: asyncio.Task[ImageInfo], progress: PullProgress) -> None:
        self._pulls.pop(key, None)
        if task.cancelled():
            return
        # Every waiter may have gone (their sessions deleted): a failure is theirs, not a log's.
        if task.exception() is None:
            self._on_pulled(progress.downloaded())

    def progress(self, key: PullKey) -> dict[str, object] | None:
        """How far the pull of this image with these credentials has come, or None when none runs."""
        pull = self._pulls.get(key)
        return pull.progress.summary() if pull else None


class SessionPulls:
    def __init__(self, settings: Settings, store: Store, runtime: Runtime, record: SessionRecord) -> None:
        self._settings = settings
        self._store = store
        self._runtime = runtime
        self._record = record
        self._pulls = ImagePulls(runtime, record.observers.image_pulled)
        self._registries = RegistryPolicy(settings.registries, public_only=settings.auth_required)
        # Sessions whose bring-up pulls first, with the launch's credentials (in memory only, until the pull),
        # and the pull each session waits for now (its progress is that session's, no one else's).
        self._requests: dict[str, RegistryCredentials | None] = {}
        self._pulling: dict[str, PullKey] = {}

    async def check(
        self, reference: str, session_type: str, credentials: RegistryCredentials | None, owner: str
    ) -> bool:
        """Check the image `owner` launches before admitting it; True when the bring-up must pull it first.

        A local image is checked against the type now. One that arrived with somebody's registry
        credentials is pulled again with the caller's (the registry decides; the layers are local,
        so that is a manifest check): holding an image never lets a stranger past its registry. A snapshot's
        name is its owner's alone, and never pulled (core/snapshots.py).
        """
        image = await self._runtime.image(reference)
        named = local_name(reference) or reference  # a snapshot by a localhost/ name is still a snapshot
        if snapshots.in_namespace(named) and not snapshots.launchable(image, owner, self._settings.instance):
            raise InvalidRequest(snapshots.not_here(reference))
        private = self._store.is_private(reference, image.id if image else None)
        if image is not None and not private:
            policy.check_image_types(image.labels, reference, session_type)
            return False
        if private and credentials is None:
            raise InvalidRequest(CREDENTIALS_NEEDED)
        if private and image is not None and local_name(reference) is not None:
            # Pulled again, a localhost/ name would be asked of a registry at localhost, not of the image's own.
            raise InvalidRequest(
                f"image '{reference}' names a local image that came from a private registry: launch it by its "
                "registry's name, with x-skaha-registry-auth"
            )
        local = local_name(reference)
        if image is None and local is not None:
            # localhost/ names this machine's own images (runtime/local_names.py): one that is not here is not
            # asked of a registry at localhost either.
            raise InvalidRequest(
                f"image '{policy.shown(reference)}' names a local image, '{policy.shown(local)}', and this machine has "
                "none of that name: build it (emulate images build), load a bundle (emulate bundle load) or pull it"
            )
        await self._registries.check(reference)  # it will be pulled: from a registry this server may reach?
        if image is not None:
            return True
        if self._settings.image_pull == "never":
            raise InvalidRequest(
                f"image '{reference}' is not in the local Docker engine and this emulator does not pull "
                "(EMULATE_IMAGE_PULL=never); build it (emulate images build), load a bundle "
                "(emulate bundle load) or pull it (docker pull) first"
            )
        return True

    def request(self, session_id: str, credentials: RegistryCredentials | None) -> None:
        """The session's bring-up pulls its image first, with these credentials (`check` said it must)."""
        self._requests[session_id] = credentials

    def forget(self, session_id: str) -> None:
        """The session goes before its bring-up pulled (a job deleted while it waited): its request, with any
        credentials, goes too."""
        self._requests.pop(session_id, None)

    def progress(self, session_id: str) -> dict[str, object] | None:
        """How far the pull the session waits for has come (None: it waits for none)."""
        pulling = self._pulling.get(session_id)
        return self._pulls.progress(pulling) if pulling else None

    async def ensure(self, session: Session) -> bool:
        """The session's image, pulled first when its launch asked (or it vanished since); False when
        that failed, with the kubelet's events (Pulling, then Pulled or Failed and ErrImagePull)."""
        asked = session.id in self._requests
        credentials = self._requests.pop(session.id, None)
        if session.fault is not None and session.fault.kind is FaultKind.PULL:
            await self._fail_as_asked(session)
            return False
        if not asked:  # resumed after a restart: the launch's credentials (if any) are gone
            here = await self._resumed(session)
            if here is not None:
                return here
        return await self._pull(session, credentials)

    async def _resumed(self, session: Session) -> bool | None:
        """True: the image of a session resumed after a restart is here; False: it failed; None: pull it."""
        image = await self._runtime.image(session.image)
        if self._store.is_private(session.image, image.id if image else None):
            await self._record.fail_start(
                session.id,
                "The registry credentials of this launch were lost when the emulator restarted; launch it again",
                FailureCause.IMAGE_PULL,
            )
            return False
        if image is not None:
            return True
        if self._settings.image_pull == "never":
            await self._record.fail_start(
                session.id, f"image '{session.image}' is no longer in the local Docker engine", FailureCause.IMAGE_PULL
            )
            return False
        return None

    async def _pull(self, session: Session, credentials: RegistryCredentials | None) -> bool:
        record = self._record
        record.event(session.id, "Pulling", f'Pulling image "{session.image}"')
        started = time.monotonic()
        try:
            pulled = await self._anonymously(session) if credentials is not None else None
            if pulled is not None:
                credentials = None  # anyone may pull it: the credentials make it no one's private image
            else:
                if credentials is not None:  # marked before the pull: no launch without credentials slips in
                    self._store.mark_private(session.image)
                self._pulling[session.id] = (session.image, credentials)
                pulled = await self._pulls.pull(session.image, credentials)
        except ImagePullError as exc:
            await self._failed(session, exc)
            return False
        finally:
            self._pulling.pop(session.id, None)
        if credentials is not None:
            self._store.mark_private(session.image, pulled.id)
        if not record.still_pending(session.id):
            return False  # deleted while it pulled
        seconds = time.monotonic() - started
        record.event(
            session.id,
            "Pulled",
            f'Successfully pulled image "{session.image}" in {seconds:.1f}s, {pulled.size / MB:.0f} MB',
        )
        try:
            policy.check_image_types(pulled.labels, session.image, session.type)
        except InvalidRequest as exc:
            await record.fail_start(session.id, exc.message)
            return False
        return True

    async def _failed(self, session: Session, failure: ImagePullError) -> None:
        """The kubelet's events of a failed pull (Failed, then Error: ErrImagePull), and the session fails."""
        if self._record.still_pending(session.id):
            message = f'Failed to pull image "{session.image}": {failure.message}'
            self._record.event(session.id, "Failed", message, warning=True)
            await self._record.fail_start(session.id, "Error: ErrImagePull", FailureCause.IMAGE_PULL)

    async def _fail_as_asked(self, session: Session) -> None:
        """The pull its launch asked to fail (fault=pull): a real failed pull's events, the registry having no
        such image (in the engine's words for that)."""
        self._record.event(session.id, "Pulling", f'Pulling image "{session.image}"')
        await asyncio.sleep(FAULT_PULL_SECONDS)
        log.warning("session %s: its pull fails, as its launch asked (fault=pull)", session.id)
        engine_words = f"manifest for {session.image} not found: manifest unknown: manifest unknown"
        await self._failed(session, pull_failure(engine_words))

    async def _anonymously(self, session: Session) -> ImageInfo | None:
        """The image pulled without credentials, or None when the registry refuses that. An image becomes
        private only then: someone who sends credentials for a public image must not make it private for
        everyone else."""
        self._pulling[session.id] = (session.image, None)
        try:
            return await self._pulls.pull(session.image, None)
        except ImagePullError:
            return None
