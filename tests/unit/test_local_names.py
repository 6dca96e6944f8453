"""The three-part names local images are listed and launched by (runtime/local_names.py), and the catalogue that
lists them (core/queries.py): pure rules, no engine."""

from __future__ import annotations

import pytest

from emulator import labels
from emulator.core.queries import catalogue
from emulator.runtime.base import ImageInfo
from emulator.runtime.local_names import is_three_part, listed_name, local_name


@pytest.mark.parametrize(
    ("tag", "listed"),
    [
        ("skaha-emulator/notebook:latest", "localhost/skaha-emulator/notebook:latest"),
        ("alpine:3", "localhost/library/alpine:3"),  # Docker's own name for it is library/alpine
        ("localhost/skaha-emulator/notebook:latest", "localhost/skaha-emulator/notebook:latest"),
        ("images.canfar.net/skaha/notebook:latest", "images.canfar.net/skaha/notebook:latest"),  # a registry's
        ("docker.io/jupyter/base:1", "docker.io/jupyter/base:1"),
        ("localhost:5000/team/x:1", "localhost:5000/team/x:1"),
        ("snapshot/alice/notebook:a-1", "snapshot/alice/notebook:a-1"),  # no three-part form: as it is
        ("ghcr.io/org/team/x:1", "ghcr.io/org/team/x:1"),
        ("not a name", "not a name"),
    ],
)
def test_a_local_tag_is_listed_under_localhost_and_any_other_as_it_is(tag: str, listed: str) -> None:
    assert listed_name(tag) == listed


@pytest.mark.parametrize(
    ("reference", "local"),
    [
        ("localhost/skaha-emulator/notebook:latest", "skaha-emulator/notebook:latest"),
        ("localhost/library/alpine:3", "library/alpine:3"),
        ("localhost/x/y", None),  # no tag: not a name we list
        ("localhost:5000/x/y:1", None),  # a registry at a port is a registry
        ("images.canfar.net/skaha-emulator/notebook:latest", None),  # never a real registry's name as local
        ("skaha-emulator/notebook:latest", None),
        ("localhost/snapshot/alice/x:1", None),
        (f"localhost/x/y@sha256:{'a' * 64}", None),
        ("Localhost/x/y:1", None),
    ],
)
def test_only_a_localhost_project_name_tag_stands_for_a_local_image(reference: str, local: str | None) -> None:
    assert local_name(reference) == local


def test_a_listed_name_launches_the_tag_it_was_listed_for() -> None:
    for tag in ("skaha-emulator/notebook:latest", "team/astro:dev"):
        assert local_name(listed_name(tag)) == tag


@pytest.mark.parametrize(
    ("image_id", "readable"),
    [
        ("localhost/skaha-emulator/notebook:latest", True),
        ("images.canfar.net/skaha/notebook:latest", True),
        ("localhost:5000/x/y:1", True),
        ("skaha-emulator/notebook:latest", False),
        ("snapshot/alice/notebook:a-1", False),  # three parts, but `snapshot` is no registry host
        ("images.canfar.net/skaha/notebook", False),
        ("images.canfar.net/a/b/c:1", False),
    ],
)
def test_three_part_means_registry_project_name_tag(image_id: str, readable: bool) -> None:
    assert is_three_part(image_id) is readable


def _image(image_id: str, *tags: str, types: str = "notebook") -> ImageInfo:
    return ImageInfo(image_id, list(tags), {labels.IMAGE_SESSION_TYPES: types}, f"sha256:{image_id}")


def test_the_catalogue_lists_each_local_image_once_under_its_three_part_name() -> None:
    images = [
        _image("a", "skaha-emulator/notebook:latest", "localhost/skaha-emulator/notebook:latest"),
        _image("b", "skaha-emulator/notebook:dev", "images.canfar.net/skaha/notebook:dev"),
        _image("c", "snapshot/alice/notebook:x-1"),
    ]
    listed = [entry.id for entry in catalogue(images, set(), None)]
    assert listed == [
        "images.canfar.net/skaha/notebook:dev",
        "localhost/skaha-emulator/notebook:dev",
        "localhost/skaha-emulator/notebook:latest",
        "snapshot/alice/notebook:x-1",
    ]
    hidden = catalogue(images, set(), None, lambda name, image_labels: not name.startswith("snapshot/"))
    assert "snapshot/alice/notebook:x-1" not in [entry.id for entry in hidden]
