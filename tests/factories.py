"""One way for tests to make what they need: a user, a session record with sensible defaults, a session's
container spec, and the test images."""

from __future__ import annotations

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


@contextmanager
def built_test_images(client: docker.DockerClient, names: Iterable[str], prefix: str = "") -> Iterator[dict[str, str]]:
    """tests/images/<name> built as skaha-emulator-test/<prefix><name>:latest for the block, then removed."""
    tags = {name: f"skaha-emulator-test/{prefix}{name}:latest" for name in names}
    try:
        for name, tag in tags.items():
            client.images.build(path=str(TEST_IMAGES / name), tag=tag, rm=True)
        yield tags
    finally:
        for tag in tags.values():
            with suppress(docker.errors.ImageNotFound):
                client.images.remove(tag, force=True, noprune=True)  # its layers stay as build cache
