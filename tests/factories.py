"""One way for tests to make what they need: a user, a session record with sensible defaults, a session's
container spec, and the test images."""

from __future__ import annotations

import fcntl
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import docker
import docker.errors

from emulator.core.contract import build_spec
from emulator.core.models import Group, Resources, Session, Status, User
from emulator.profiles import load_profiles
from emulator.runtime.base import ContainerSpec
from emulator.session_types import SessionType
from emulator.settings import REPO_ROOT, Settings

NOW = datetime(2026, 1, 1, tzinfo=UTC)
USER = User("alice", 1500, 1500, (Group("alice", 1500), Group("astro", 3001)))  # in her own group and astro


def make_session(**overrides: Any) -> Session:
    """A Pending notebook of alice's with fixed 2 cores / 8 GB; any field may be overridden."""
    values: dict[str, Any] = dict(
        id="k3x9q2ab",
        user="alice",
        type=SessionType.NOTEBOOK,
        name="analysis",
        image="img:1",
        status=Status.PENDING,
        resources=Resources(2, 2, 8, 8, fixed=True),
        start_time=NOW,
        expiry_time=NOW,
    )
    values.update(overrides)
    if isinstance(values["type"], str):
        values["type"] = SessionType(values["type"])
    return Session(**values)


def make_spec(tmp_path: Path, **settings: Any) -> ContainerSpec:
    """The container of `make_session()`'s notebook for USER, in instance t1 with its state and /arc under
    `tmp_path` (and any other settings given)."""
    config = Settings(instance="t1", state_dir=tmp_path / "s", arc_dir=tmp_path / "arc", **settings)
    profile = load_profiles(REPO_ROOT / "profiles")["notebook"]
    return build_spec(profile, make_session(), USER, config)


TEST_IMAGES = Path(__file__).resolve().parent / "images"
# Builds and removals of test images, one at a time across the suite's processes (pytest-xdist's workers):
# a tag removed while another process's build of the same steps runs takes the image that build's cache
# stands on ("failed to get digest").
_IMAGES_LOCK = Path(tempfile.gettempdir()) / "skaha-emulator-test-images.lock"


@contextmanager
def _one_at_a_time() -> Iterator[None]:
    with _IMAGES_LOCK.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def worker_image_tag(name: str) -> str:
    """A test image's tag of this process's own (each xdist worker removes its tags when done with them)."""
    from tests.instance import INSTANCE

    return f"skaha-emulator-test/{name}:{INSTANCE}"


def build_test_image(client: docker.DockerClient, tag: str, **build: Any) -> str:
    """`client.images.build(tag=tag, rm=True, **build)`, never beside another process's build or removal."""
    with _one_at_a_time():
        client.images.build(tag=tag, rm=True, **build)
    return tag


def remove_test_image(client: docker.DockerClient, tag: str) -> None:
    """The tag goes; its layers stay as the engine's build cache (the next run builds nothing)."""
    with _one_at_a_time(), suppress(docker.errors.ImageNotFound):
        client.images.remove(tag, force=True, noprune=True)


@contextmanager
def built_test_images(client: docker.DockerClient, names: Iterable[str], prefix: str = "") -> Iterator[dict[str, str]]:
    """tests/images/<name> built as skaha-emulator-test/<prefix><name>:<instance> for the block, then removed."""
    tags = {name: worker_image_tag(f"{prefix}{name}") for name in names}
    try:
        for name, tag in tags.items():
            build_test_image(client, tag, path=str(TEST_IMAGES / name))
        yield tags
    finally:
        for tag in tags.values():
            remove_test_image(client, tag)
