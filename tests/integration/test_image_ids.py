"""Image ids as skaha writes them (`registry/project/name:tag`, which CANFAR's Science Portal 2.0 requires): a
local image is listed under localhost/, a launch by that name runs the local image without asking any registry,
and its old name launches it too."""

from __future__ import annotations

from collections.abc import Iterator

import docker
import pytest

from emulator.core.snapshots import in_namespace
from emulator.runtime.local_names import is_three_part
from tests.factories import TEST_IMAGES, build_test_image, remove_test_image, worker_image_tag
from tests.instance import Instance

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def job_image(docker_client: docker.DockerClient) -> Iterator[str]:
    """A small headless image (its own command prints a line and ends), under a local name only."""
    tag = build_test_image(docker_client, worker_image_tag("ids-job"), path=str(TEST_IMAGES / "headless-job"))
    yield tag
    remove_test_image(docker_client, tag)


def test_local_images_are_listed_and_launched_by_a_three_part_localhost_name(fresh: Instance, job_image: str) -> None:
    listed = [entry["id"] for entry in fresh.http.get("/image").json()]
    # A snapshot (`snapshot/<user>/...`, its owner's alone) keeps its own name; every other id has skaha's shape.
    assert [i for i in listed if not is_three_part(i) and not in_namespace(i)] == []
    alias = f"localhost/{job_image}"
    assert alias in listed and job_image not in listed

    by_alias = fresh.job("by-alias", image=alias)
    done = fresh.wait_status(by_alias, "Succeeded")
    assert done["image"] == alias  # as skaha does: the session shows the image the launch asked for
    events = fresh.http.get(f"/session/{by_alias}", params={"view": "events"}).text
    assert "Pulling" not in events and "Failed" not in events, events
    assert "job done" in fresh.http.get(f"/session/{by_alias}", params={"view": "logs"}).text

    by_old_name = fresh.job("by-old-name", image=job_image)
    assert fresh.wait_status(by_old_name, "Succeeded")["image"] == job_image

    # A localhost/ name of no local image is said so at once (never asked of a registry at localhost), and
    # leaves no row behind.
    rows = fresh.rows()
    missing = fresh.http.post(
        "/session", data={"name": "missing", "image": "localhost/nobody/nothing:1", "type": "headless"}
    )
    assert (missing.status_code, missing.text.strip()) == (
        400,
        "image 'localhost/nobody/nothing:1' names a local image, 'nobody/nothing:1', and this machine has none of "
        "that name: build it (emulate images build), load a bundle (emulate bundle load) or pull it",
    )
    assert fresh.rows() == rows
