"""Sessions saved as images: the names, the labels, who sees and launches what, every refusal made before the
engine is asked to commit anything, and the configuration the new image gets (runtime/snapshots.py)."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import tarfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import docker.errors
import pytest

from emulator import labels
from emulator.core import snapshots
from emulator.core.disk import DiskWatch
from emulator.core.locks import SessionLocks
from emulator.core.models import Session, Status
from emulator.core.pulls import SessionPulls
from emulator.core.record import SessionRecord
from emulator.core.snapshots import Snapshots
from emulator.core.store import Store
from emulator.errors import DiskFull, InvalidRequest, NotFound
from emulator.profiles import load_profiles
from emulator.runtime.base import ImageInfo, SnapshotRequest
from emulator.runtime.docker import DockerRuntime
from emulator.runtime.snapshots import config_archive, history_entries, snapshot_config
from emulator.session_types import SessionType
from emulator.settings import REPO_ROOT, Settings
from tests.factories import NOW, USER, make_session
from tests.unit.recorded_engines import DOCKER, PODMAN, StubClient, facts

ORIGINAL = "images.canfar.net/skaha/astroml:1.0"
RUNNING = make_session(status=Status.RUNNING, image=ORIGINAL)
NOTEBOOK_LABEL = {labels.IMAGE_SESSION_TYPES: "notebook"}


# --- names ------------------------------------------------------------------------------------------------


def test_the_default_name_is_the_images_under_the_users_namespace_tagged_with_the_session_and_the_time() -> None:
    assert snapshots.snapshot_name("alice", None, RUNNING, NOW) == "snapshot/alice/astroml:analysis-20260101-000000"


@pytest.mark.parametrize(
    ("tag", "name"),
    [
        ("tools", "snapshot/alice/tools:latest"),
        ("tools:v2", "snapshot/alice/tools:v2"),
        ("snapshot/alice/tools:v2", "snapshot/alice/tools:v2"),
        ("snapshot/alice/team/tools", "snapshot/alice/team/tools:latest"),
    ],
)
def test_a_tag_names_the_image_under_the_users_namespace(tag: str, name: str) -> None:
    assert snapshots.snapshot_name("alice", tag, RUNNING, NOW) == name


@pytest.mark.parametrize(
    ("tag", "words"),
    [
        ("Tools:1", "is not a valid image name"),
        ("tools:bad tag", "is not a valid image name"),
        ("tools@sha256:" + "a" * 64, "named by a tag, not a digest"),
        ("team/tools:1", "is outside your snapshots"),
        ("snapshot/bob/tools:1", "is outside your snapshots"),
        ("registry.example.org/snapshot/alice/x:1", "is outside your snapshots"),
    ],
)
def test_a_tag_that_is_no_image_name_or_not_the_users_is_refused_in_words(tag: str, words: str) -> None:
    with pytest.raises(InvalidRequest, match=words):
        snapshots.snapshot_name("alice", tag, RUNNING, NOW)


@pytest.mark.parametrize(("user", "namespace"), [("alice", "alice"), ("a.b", "a-b"), ("_x_", "x"), ("__", "user")])
def test_any_user_name_makes_a_valid_namespace(user: str, namespace: str) -> None:
    assert snapshots.user_namespace(user) == f"snapshot/{namespace}"
    assert snapshots.in_namespace(f"{snapshots.user_namespace(user)}/x:1")


@pytest.mark.parametrize(
    ("reference", "inside"),
    [
        ("snapshot/alice/x:1", True),
        ("docker.io/snapshot/alice/x", True),
        ("snapshot/x", True),
        ("skaha-emulator/notebook:latest", False),
        ("registry.example.org/snapshot/alice/x:1", False),
        ("Snapshot/x", False),  # a registry named Snapshot, as the engine reads it
        ("not a reference", False),
    ],
)
def test_the_namespace_is_snapshot_on_no_registry(reference: str, inside: bool) -> None:
    assert snapshots.in_namespace(reference) is inside


def test_a_snapshots_name_is_its_owners_alone_and_other_names_are_everyones() -> None:
    alices = {labels.SNAPSHOT_OWNER: "alice", labels.SNAPSHOT_INSTANCE: "default"}
    assert snapshots.visible("snapshot/alice/x:1", alices, "alice", "default")
    assert not snapshots.visible("snapshot/alice/x:1", alices, "bob", "default")
    assert not snapshots.visible("snapshot/alice/x:1", alices, "alice", "other")  # another instance's alice
    assert not snapshots.visible("snapshot/alice/x:1", {}, "alice", "default")  # not a snapshot at all
    assert snapshots.visible("team/x:1", alices, "bob", "default")  # the operator named it for everyone


def test_the_labels_keep_the_images_but_not_how_it_was_built_and_say_whose_it_is() -> None:
    original = {
        labels.IMAGE_SESSION_TYPES: "notebook,headless",
        labels.RECIPE: "notebook",
        labels.VERSION: "0.1",
        "org.opencontainers.image.title": "astroml",
    }
    made = snapshots.snapshot_labels(original, RUNNING, "alice", "default", NOW)
    assert made[labels.IMAGE_SESSION_TYPES] == "notebook,headless"
    assert labels.RECIPE not in made and labels.VERSION not in made
    assert made["org.opencontainers.image.title"] == "astroml"
    assert made[labels.SNAPSHOT_OWNER] == "alice" and made[labels.SNAPSHOT_INSTANCE] == "default"
    assert made[labels.SNAPSHOT_SESSION] == RUNNING.id and made[labels.SNAPSHOT_IMAGE] == ORIGINAL
    assert "analysis" in made[labels.IMAGE_DESCRIPTION]
    for declared in ({}, {labels.IMAGE_SESSION_TYPES: "desktop"}):  # none, or not the session's
        assert snapshots.snapshot_labels(declared, RUNNING, "alice", "d", NOW)[labels.IMAGE_SESSION_TYPES] == "notebook"


# --- the verb, against an engine that records what it is asked ------------------------------------------------


@dataclass
class Engine:
    """The engine as a snapshot asks it: its images by name, the image the session's container runs."""

    images_by_name: dict[str, ImageInfo] = field(default_factory=dict)
    running: ImageInfo | None = field(default_factory=lambda: ImageInfo("sha256:orig", [ORIGINAL], {}, ""))
    saved: list[SnapshotRequest] = field(default_factory=list)

    async def image(self, reference: str) -> ImageInfo | None:
        return self.images_by_name.get(reference)

    async def images(self) -> list[ImageInfo]:
        return list(self.images_by_name.values())

    async def container_image(self, name: str) -> ImageInfo | None:
        return self.running

    async def snapshot(self, request: SnapshotRequest) -> ImageInfo:
        self.saved.append(request)
        return ImageInfo("sha256:new", [request.name], request.labels, "")


@dataclass
class Rig:
    snapshots: Snapshots
    store: Store
    engine: Engine

    def save(self, session_id: str = RUNNING.id, tag: str | None = None) -> str:
        return asyncio.run(self.snapshots.save(USER, session_id, tag))


@contextmanager
def _rig(tmp_path: Path, disk: DiskWatch) -> Iterator[Rig]:
    settings = Settings(instance="t1", state_dir=tmp_path / "s", arc_dir=tmp_path / "arc", max_snapshots=2)
    profiles = load_profiles(REPO_ROOT / "profiles")
    store = Store(tmp_path / "state.db", uncounted_types={"headless", "desktop-app"}, batch_types={"headless"})
    engine = Engine()
    runtime: Any = engine
    record = SessionRecord(store, runtime, settings.prefix, lambda: NOW)
    made = Snapshots(settings, store, runtime, profiles, record, SessionLocks(), disk)
    assert store.admit(RUNNING, 3)
    try:
        yield Rig(made, store, engine)
    finally:
        store.close()


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    with _rig(tmp_path, DiskWatch({}, 0)) as made:
        yield made


def _alices(name: str, instance: str = "t1") -> ImageInfo:
    return ImageInfo(f"sha256:{name}", [name], {labels.SNAPSHOT_OWNER: "alice", labels.SNAPSHOT_INSTANCE: instance}, "")


def test_a_running_session_is_saved_with_the_original_image_and_its_labels(rig: Rig) -> None:
    name = rig.save()
    (request,) = rig.engine.saved
    assert name == request.name == "snapshot/alice/astroml:analysis-20260101-000000"
    assert request.container == f"{Settings(instance='t1').prefix}-notebook-{RUNNING.id}"
    assert request.image_id == "sha256:orig" and request.labels[labels.SNAPSHOT_OWNER] == "alice"
    assert RUNNING.id in request.note
    assert rig.store.events(RUNNING.id)[-1].message.startswith(f"Saved as image {name}")


@pytest.mark.parametrize(
    ("session", "refusal", "words"),
    [
        (make_session(id="b0b00000", user="bob", status=Status.RUNNING), NotFound, "not found"),
        (make_session(id="pend0000"), InvalidRequest, "is Pending: only a Running session"),
        (make_session(id="job00000", type=SessionType.HEADLESS, status=Status.RUNNING), InvalidRequest, "job"),
        (make_session(id="k3x9q2ab-app", parent_id=RUNNING.id, status=Status.RUNNING), NotFound, "not found"),
    ],
)
def test_only_the_callers_running_interactive_session_is_saved(
    rig: Rig, session: Session, refusal: type[Exception], words: str
) -> None:
    assert rig.store.admit(session, 3)
    with pytest.raises(refusal, match=words):
        rig.save(session.id)
    with pytest.raises(NotFound):
        rig.save("nosuchid")
    assert rig.engine.saved == []


def test_a_name_held_by_an_image_that_is_not_hers_is_refused_and_hers_is_replaced(rig: Rig) -> None:
    rig.engine.images_by_name["snapshot/alice/tools:1"] = ImageInfo("sha256:x", ["snapshot/alice/tools:1"], {}, "")
    rig.engine.images_by_name["snapshot/alice/old:1"] = _alices("snapshot/alice/old:1", instance="elsewhere")
    for tag in ("tools:1", "old:1"):
        with pytest.raises(InvalidRequest, match="is not a snapshot of yours"):
            rig.save(tag=tag)
    assert rig.engine.saved == []
    rig.engine.images_by_name["snapshot/alice/mine:1"] = _alices("snapshot/alice/mine:1")
    assert rig.save(tag="mine:1") == "snapshot/alice/mine:1"


def test_a_user_keeps_at_most_max_snapshots_and_may_still_replace_one(rig: Rig) -> None:
    rig.engine.images_by_name["snapshot/alice/a:1"] = _alices("snapshot/alice/a:1")
    rig.engine.images_by_name["evil/img:1"] = _alices("evil/img:1")  # pulled with her labels: not one of hers
    assert rig.save(tag="b:1") == "snapshot/alice/b:1"  # one of two
    rig.engine.images_by_name["snapshot/alice/b:1"] = _alices("snapshot/alice/b:1")
    with pytest.raises(InvalidRequest, match="you have 2 saved images.*EMULATE_MAX_SNAPSHOTS=2"):
        rig.save(tag="c:1")
    assert rig.save(tag="a:1") == "snapshot/alice/a:1"
    assert [request.name for request in rig.engine.saved] == ["snapshot/alice/b:1", "snapshot/alice/a:1"]


def test_nothing_is_saved_on_a_nearly_full_disk(tmp_path: Path) -> None:
    with _rig(tmp_path, DiskWatch({"the engine's disk": tmp_path}, min_free_gb=1e9)) as full:
        with pytest.raises(DiskFull, match="saving an image needs"):
            full.save()
        assert full.engine.saved == []


def test_a_session_of_an_image_that_needed_credentials_is_not_saved(rig: Rig) -> None:
    rig.store.mark_private(ORIGINAL, "sha256:orig")
    with pytest.raises(InvalidRequest, match="registry credentials"):
        rig.save()
    assert rig.engine.saved == []


# --- the image's configuration --------------------------------------------------------------------------------

LISTED_HISTORY = [  # the engine's history listing: newest first
    {"Created": 1700000200, "CreatedBy": '/bin/sh -c #(nop)  CMD ["jupyter"]', "Size": 0},
    {"Created": 1700000100, "CreatedBy": "/bin/sh -c pip install jupyterlab", "Size": 5000},
    {"Created": 1700000000, "CreatedBy": "/bin/sh -c #(nop) ADD file:abc in /", "Size": 70000},
]
INSPECTED = {
    "Architecture": "amd64",
    "Os": "linux",
    "Config": {"Env": ["PATH=/opt/jupyter/bin:/usr/bin"], "Cmd": ["jupyter"], "User": "", "Labels": {"a": "b"}},
    "ContainerConfig": {"Env": ["JUPYTER_TOKEN=secret"]},
    "Container": "c0ffee",
}


def test_the_history_is_the_originals_when_its_entries_match_its_layers() -> None:
    entries = history_entries(LISTED_HISTORY, 2)
    assert [entry.get("empty_layer", False) for entry in entries] == [False, False, True]
    assert entries[0]["created"] == "2023-11-14T22:13:20.000000Z"
    assert history_entries(LISTED_HISTORY, 3) == []  # a layer no entry owns: left out rather than misdrawn


def test_the_config_is_the_originals_with_the_requests_labels_and_nothing_of_the_container() -> None:
    request = SnapshotRequest("emulate-notebook-x", "sha256:orig", "snapshot/alice/x:1", {"owner": "alice"}, "note")
    document = snapshot_config(INSPECTED, LISTED_HISTORY, ["sha256:l1", "sha256:l2", "sha256:new"], request, NOW)
    assert document["config"] == {**INSPECTED["Config"], "Labels": {"owner": "alice"}}  # type: ignore[dict-item]
    assert "container_config" not in document and "container" not in document
    assert document["rootfs"] == {"type": "layers", "diff_ids": ["sha256:l1", "sha256:l2", "sha256:new"]}
    assert document["history"][-1] == {
        "created": "2026-01-01T00:00:00.000000Z",
        "created_by": "note",
        "comment": "emulate snapshot",
    }
    assert len([entry for entry in document["history"] if not entry.get("empty_layer")]) == 3
    assert "secret" not in json.dumps(document)


def test_the_archive_holds_the_config_under_its_digest_and_a_manifest_naming_the_image() -> None:
    config = {"rootfs": {"type": "layers", "diff_ids": ["sha256:a", "sha256:b"]}}
    with tarfile.open(fileobj=io.BytesIO(config_archive(config, "snapshot/alice/x:1"))) as archive:
        (manifest,) = json.loads(archive.extractfile("manifest.json").read())  # type: ignore[union-attr]
        raw = archive.extractfile(manifest["Config"]).read()  # type: ignore[union-attr]
    assert manifest["RepoTags"] == ["snapshot/alice/x:1"] and len(manifest["Layers"]) == 2
    assert manifest["Config"] == f"{hashlib.sha256(raw).hexdigest()}.json" and json.loads(raw) == config


def test_snapshots_need_docker_engines_own_image_store() -> None:
    assert facts(DOCKER).snapshot_refusal == ""
    assert "needs Docker Engine; this engine is Podman 4.3.1" in facts(PODMAN).snapshot_refusal
    # Docker 24+ with containerd's image store says so in its driver's status; this is 20.10's answer with it.
    containerd = facts(DOCKER, DriverStatus=[["driver-type", "io.containerd.snapshotter.v1"]])
    assert "containerd" in containerd.snapshot_refusal


def test_a_podman_runtime_refuses_before_it_commits_anything() -> None:
    client = StubClient(PODMAN)
    client.api = None  # any call to the engine's API would fail this test
    request = SnapshotRequest("emulate-notebook-x", "sha256:orig", "snapshot/alice/x:1", {}, "note")
    with pytest.raises(InvalidRequest, match="needs Docker Engine"):
        asyncio.run(DockerRuntime({}, client=client).snapshot(request))


class Listing:
    """The engine's image listing, with an image removed between the listing and its inspection."""

    def images(self) -> list[dict[str, str]]:
        return [{"Id": "sha256:kept"}, {"Id": "sha256:gone"}]


class Inspections:
    def get(self, image_id: str) -> Any:
        if image_id == "sha256:gone":
            raise docker.errors.ImageNotFound("gone")
        return SimpleNamespace(id=image_id, tags=["a:1"], attrs={"Config": {"Labels": {}}})


def test_an_image_removed_while_the_images_are_listed_is_left_out_not_an_error() -> None:
    client = StubClient(DOCKER)
    client.api, client.images = Listing(), Inspections()  # type: ignore[attr-defined]
    listed = asyncio.run(DockerRuntime({}, client=client).images())
    assert [image.id for image in listed] == ["sha256:kept"]


def test_a_snapshots_name_launches_for_its_owner_only_and_is_never_pulled(rig: Rig, tmp_path: Path) -> None:
    settings = Settings(instance="t1", state_dir=tmp_path / "s", arc_dir=tmp_path / "arc")
    runtime: Any = rig.engine
    pulls = SessionPulls(settings, rig.store, runtime, SessionRecord(rig.store, runtime, settings.prefix))
    name = "snapshot/alice/tools:1"
    rig.engine.images_by_name[name] = ImageInfo("sha256:t", [name], {**_alices(name).labels, **NOTEBOOK_LABEL}, "")
    assert asyncio.run(pulls.check(name, "notebook", None, "alice")) is False  # here: no pull
    for reference, who in ((name, "bob"), ("snapshot/alice/absent:1", "alice"), ("snapshot/bob/x:1", "bob")):
        with pytest.raises(InvalidRequest) as refused:
            asyncio.run(pulls.check(reference, "notebook", None, who))
        assert refused.value.message == snapshots.not_here(reference)  # the same words, here or not
