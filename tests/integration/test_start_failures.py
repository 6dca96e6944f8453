"""A session that cannot start says why, and never stays Pending: an app that never answers, a
container that exits during start-up, GPUs this machine cannot give (CANFAR's "session won't start")."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import docker
import pytest
import yaml

from emulator.settings import REPO_ROOT
from tests.factories import build_test_image, remove_test_image, worker_image_tag
from tests.instance import Instance, start_instance, stop_instance

pytestmark = pytest.mark.slow

TEST_IMAGES = REPO_ROOT / "tests" / "images"
STARTUP_TIMEOUT = 2  # seconds, in this instance's profiles: it gives up after twice that


@pytest.fixture(scope="module")
def impatient(tmp_path_factory: pytest.TempPathFactory, docker_client: docker.DockerClient) -> Iterator[Instance]:
    """An instance whose contributed profile waits only a moment for its app (the notebook's waits as usual,
    so a notebook that cannot start ends by exiting, after Docker's few restarts)."""
    root = tmp_path_factory.mktemp("impatient")
    profiles = root / "profiles"
    shutil.copytree(REPO_ROOT / "profiles", profiles)
    path = profiles / "contributed.yaml"
    document = yaml.safe_load(path.read_text())
    document["startup_timeout_seconds"] = STARTUP_TIMEOUT
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("EMULATE_PROFILES_DIR", str(profiles))
        instance = start_instance(root, "pytest-impatient", docker_client)
    try:
        yield instance
    finally:
        stop_instance(instance, docker_client)


@pytest.fixture(scope="module")
def broken(docker_client: docker.DockerClient) -> Iterator[dict[str, str]]:
    """The test images that cannot start, under names of this module's own, removed afterwards (a
    labelled image left behind would be offered by the catalogue and the portal to later tests)."""
    tags = {}
    for folder in ("wrong-port", "no-jupyter"):
        tags[folder] = build_test_image(
            docker_client, worker_image_tag(f"start-failure-{folder}"), path=str(TEST_IMAGES / folder)
        )
    yield tags
    for tag in tags.values():
        remove_test_image(docker_client, tag)


def _events(instance: Instance, session_id: str) -> str:
    return instance.http.get(f"/session/{session_id}", params={"view": "events"}).text


def test_an_app_that_never_answers_fails_with_its_last_output(impatient: Instance, broken: dict[str, str]) -> None:
    image = broken["wrong-port"]  # serves on 8000, not the contract's 5000
    session_id = impatient.launch("deaf", wait=False, image=image, type="contributed")
    impatient.wait_status(session_id, "Failed", timeout=60)
    events = _events(impatient, session_id)
    assert "Unhealthy" in events
    assert f"Never ready: nothing answered on port 5000 in {2 * STARTUP_TIMEOUT} s" in events
    assert "It wrote no output." in events  # python's http.server keeps its banner in a pipe's buffer
    assert impatient.session_containers() == []  # no container is left running for nothing


def test_a_container_that_exits_during_start_up_says_so_with_its_output(
    impatient: Instance, broken: dict[str, str]
) -> None:
    image = broken["no-jupyter"]  # labelled notebook, but there is no JupyterLab to start
    session_id = impatient.launch("broken", wait=False, image=image, type="notebook")
    impatient.wait_status(session_id, "Failed", timeout=90)
    events = _events(impatient, session_id)
    assert "during start-up. Its last output:" in events, events
    assert "jupyter" in events.lower()


def test_gpus_this_machine_cannot_give_are_refused_with_the_reason(impatient: Instance) -> None:
    data = {"name": "gpu", "image": "skaha-emulator/notebook:latest", "type": "notebook", "gpus": "1"}
    before = impatient.rows()
    refused = impatient.http.post("/session", data=data)
    assert refused.status_code == 400
    assert refused.text.startswith("Invalid value for 'gpus': 1 (no NVIDIA GPU on this machine")
    assert "(NVML: " in refused.text  # the service carries NVML, which found no driver here
    assert impatient.rows() == before
