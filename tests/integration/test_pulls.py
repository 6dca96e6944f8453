"""Images pulled on demand from a real registry, as the kubelet pulls them: events, shared pulls,
private registries (x-skaha-registry-auth) and every way a pull fails, each leaving nothing behind."""

from __future__ import annotations

import base64
import contextlib
import json
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from emulator import labels
from tests.instance import Instance, free_port, start_instance, stop_instance
from tests.registry import CuttableRelay, Registry, unique_image

pytestmark = pytest.mark.slow

OWNER, OWNER_SECRET = "astro", "s3cret:with-colon"


@pytest.fixture(scope="module")
def open_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    registry = Registry(tmp_path_factory.mktemp("registry-open"))
    yield registry
    registry.stop()


@pytest.fixture(scope="module")
def private_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    registry = Registry(tmp_path_factory.mktemp("registry-private"), users={OWNER: OWNER_SECRET})
    yield registry
    registry.stop()


@pytest.fixture(scope="module")
def stalling(tmp_path_factory: pytest.TempPathFactory, docker_client: docker.DockerClient) -> Iterator[Instance]:
    """An instance of its own whose pulls give up after 3 s with nothing new from the registry."""
    instance = start_instance(
        tmp_path_factory.mktemp("stall"), "pytest-stall", docker_client, settings={"EMULATE_PULL_STALL_SECONDS": "3"}
    )
    try:
        yield instance
    finally:
        stop_instance(instance, docker_client)


@pytest.fixture
def pushed(docker_client: docker.DockerClient, open_registry: Registry) -> Iterator[str]:
    """An image in the open registry and not in the local engine."""
    name = _pushed(docker_client, open_registry, "test/job")
    yield name
    _forget(docker_client, name)


def _pushed(
    client: docker.DockerClient, registry: Registry, repository: str, user: str = "", payload: int = 4096
) -> str:
    local = unique_image(client, f"pull-test-{repository.replace('/', '-')}:local", payload)
    name = registry.push(client, local, repository, "1.0", user)
    _forget(client, local)
    _forget(client, name)
    return name


def _forget(client: docker.DockerClient, name: str) -> None:
    with contextlib.suppress(docker.errors.ImageNotFound):
        client.images.remove(name, force=True)


def _events(instance: Instance, session_id: str) -> str:
    return instance.http.get(f"/session/{session_id}", params={"view": "events"}).text


def _auth(user: str, secret: str) -> dict[str, str]:
    return {"x-skaha-registry-auth": base64.b64encode(f"{user}:{secret}".encode()).decode()}


def _launch(instance: Instance, image: str, headers: dict[str, str] | None = None) -> str:
    data = {"name": "pulled", "image": image, "type": "headless"}
    response = instance.http.post("/session", data=data, headers=headers or {})
    assert response.status_code == 200, response.text
    return response.text.strip()


def _failed_to_pull(instance: Instance, session_id: str, reason: str) -> str:
    instance.wait_status(session_id, "Failed", timeout=180)
    events = _events(instance, session_id)
    assert "Pulling" in events and "Error: ErrImagePull" in events, events
    assert reason in events, events
    made = instance.docker.containers.list(
        all=True, filters={"label": [instance.label, f"{labels.ROW_ID}={session_id}"]}
    )
    assert made == []  # no container was ever made
    return events


def test_a_missing_image_is_pulled_with_the_kubelets_events(
    fresh: Instance, pushed: str, docker_client: docker.DockerClient
) -> None:
    session_id = _launch(fresh, pushed)  # answers at once with the id, as skaha does
    fresh.wait_status(session_id, "Succeeded")
    events = _events(fresh, session_id)
    reasons = [line.split()[1] for line in events.splitlines()[1:]]
    assert reasons[:4] == ["Scheduled", "Pulling", "Pulled", "Started"], events
    assert f'Pulling image "{pushed}"' in events
    assert f'Successfully pulled image "{pushed}" in ' in events and " MB" in events
    assert docker_client.images.get(pushed)
    assert "pulled job ran" in fresh.http.get(f"/session/{session_id}", params={"view": "logs"}).text
    # Present now: the next launch of it pulls nothing.
    again = _launch(fresh, pushed)
    fresh.wait_status(again, "Succeeded")
    assert "Pulling" not in _events(fresh, again)


def test_launches_of_one_missing_image_share_one_pull_and_a_delete_leaves_the_others_theirs(
    fresh: Instance, docker_client: docker.DockerClient, open_registry: Registry
) -> None:
    name = _pushed(docker_client, open_registry, "test/shared", payload=8 << 20)
    relay = CuttableRelay(open_registry.port, rate=4 << 20)  # about 2 s: every launch comes while it runs
    through_relay = name.replace(open_registry.host, relay.host)
    try:
        before = open_registry.tag_lookups("test/shared", "1.0")
        first, second, dropped = (_launch(fresh, through_relay) for _ in range(3))
        assert fresh.http.delete(f"/session/{dropped}").status_code == 200  # while the shared pull runs
        fresh.wait_gone(dropped)
        for session_id in (first, second):
            fresh.wait_status(session_id, "Succeeded")
            assert "Pulled" in _events(fresh, session_id)
        all_three = open_registry.tag_lookups("test/shared", "1.0") - before
        assert all_three == _single_pull_lookups(docker_client, open_registry, name)  # as one pull makes
    finally:
        relay.cut()
        _forget(docker_client, through_relay)
        _forget(docker_client, name)


def _single_pull_lookups(client: docker.DockerClient, registry: Registry, name: str) -> int:
    """How many tag lookups one `docker pull` of the image makes (measured, not assumed)."""
    _forget(client, name)
    before = registry.tag_lookups("test/shared", "1.0")
    client.images.pull(name)
    return registry.tag_lookups("test/shared", "1.0") - before


def test_a_missing_tag_fails_with_its_reason(fresh: Instance, pushed: str) -> None:
    session_id = _launch(fresh, pushed.replace(":1.0", ":no-such-tag"))
    _failed_to_pull(fresh, session_id, "the registry has no such image")


def test_an_unreachable_registry_fails_with_its_reason(fresh: Instance) -> None:
    session_id = _launch(fresh, f"127.0.0.1:{free_port()}/nobody/here:1.0")
    _failed_to_pull(fresh, session_id, "the registry cannot be reached")


def test_a_private_registry_needs_the_right_credentials_and_they_are_never_kept(
    fresh: Instance, docker_client: docker.DockerClient, private_registry: Registry
) -> None:
    name = _pushed(docker_client, private_registry, "team/private", user=OWNER)
    try:
        no_credentials = _launch(fresh, name)
        _failed_to_pull(fresh, no_credentials, "the registry refused access")
        wrong = _launch(fresh, name, _auth(OWNER, "wrong"))
        _failed_to_pull(fresh, wrong, "the registry refused access")
        bad_header = fresh.http.post(
            "/session", data={"name": "x", "image": name, "type": "headless"}, headers={"x-skaha-registry-auth": "!!"}
        )
        assert (bad_header.status_code, bad_header.text) == (
            400,
            "Invalid input.  Must be in form of username:secret\n",
        )

        right = _launch(fresh, name, _auth(OWNER, OWNER_SECRET))
        fresh.wait_status(right, "Succeeded")
        assert "Successfully pulled image" in _events(fresh, right)
        # The secret is in no log, no row, no file of the instance.
        secret_b64 = _auth(OWNER, OWNER_SECRET)["x-skaha-registry-auth"]
        found = _grep(fresh.root, OWNER_SECRET.encode(), secret_b64.encode())
        assert found == [], found
        assert OWNER_SECRET not in fresh.service_logs()

        # The catalogue (GET /image, the portal's list) does not offer a private image to anyone.
        listed = [entry["id"] for entry in fresh.http.get("/image").json()]
        assert name not in listed and "localhost/skaha-emulator/notebook:latest" in listed
        # Local now, but it came with credentials: a launch without them is refused as skaha refuses it,
        # and one with wrong ones is refused by the registry.
        refused = fresh.http.post("/session", data={"name": "x", "image": name, "type": "headless"})
        assert refused.status_code == 400 and "x-skaha-registry-auth" in refused.text
        stranger = _launch(fresh, name, _auth(OWNER, "guess"))
        _failed_to_pull(fresh, stranger, "the registry refused access")
    finally:
        _forget(docker_client, name)


def test_credentials_sent_for_a_public_image_do_not_make_it_private(fresh: Instance, pushed: str) -> None:
    """An image is private only when the registry refuses it to an anonymous pull: someone who sends
    credentials for a public one must not lock everyone else out of it."""
    with_credentials = _launch(fresh, pushed, _auth("someone", "anything"))
    fresh.wait_status(with_credentials, "Succeeded")
    without = _launch(fresh, pushed)
    fresh.wait_status(without, "Succeeded")
    assert "Pulling" not in _events(fresh, without)  # it is here, and nobody's private image


def _grep(root: Path, *needles: bytes) -> list[str]:
    found = []
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            try:
                data = path.read_bytes()
            except OSError:
                continue
            found += [f"{path}: {needle!r}" for needle in needles if needle in data]
    return found


def test_a_registry_that_stops_mid_pull_fails_the_session_and_leaves_no_lock(
    stalling: Instance, docker_client: docker.DockerClient, open_registry: Registry
) -> None:
    """The engine retries a broken download for 50 s in all; past the stall limit the session fails without
    waiting for the rest, and the engine is left with no half-pulled layer locked."""
    name = _pushed(docker_client, open_registry, "test/big", payload=24 << 20)
    relay = CuttableRelay(open_registry.port, rate=2 << 20)  # 2 MB/s: the pull takes about 12 s
    through_relay = name.replace(open_registry.host, relay.host)
    try:
        session_id = _launch(stalling, through_relay)
        deadline = time.monotonic() + 60
        while True:  # cut once some of the layer has come (seen through view=pull)
            progress = stalling.http.get(f"/session/{session_id}", params={"view": "pull"}).json()
            if progress and progress["bytes"]["current"] > 1 << 20:
                break
            assert time.monotonic() < deadline, f"the pull never moved: {progress}"
            time.sleep(0.1)
        assert progress["image"] == through_relay and progress["layers"]["total"] >= 1
        relay.cut()
        started = time.monotonic()
        events = _failed_to_pull(stalling, session_id, "the registry stopped answering during the pull")
        assert "Pulled" not in events and "the engine kept retrying" in events
        assert time.monotonic() - started < 30  # not the engine's whole 50 s of retries
        # No layer lock is left dangling: the same layers pull at once from the registry itself.
        done = threading.Event()

        def pull_again() -> None:
            docker_client.images.pull(name)
            done.set()

        threading.Thread(target=pull_again, daemon=True).start()
        assert done.wait(60), "a pull of the same layers hung after the failed one"
    finally:
        relay.cut()
        _forget(docker_client, through_relay)
        _forget(docker_client, name)


def test_emulate_launch_shows_the_pull_and_sends_dockers_stored_credentials(
    fresh: Instance, docker_client: docker.DockerClient, private_registry: Registry, tmp_path: Path
) -> None:
    name = _pushed(docker_client, private_registry, "team/cli", user=OWNER)
    logged_in, nobody = tmp_path / "logged-in", tmp_path / "nobody"
    for folder in (logged_in, nobody):
        folder.mkdir()
    stored = base64.b64encode(f"{OWNER}:{OWNER_SECRET}".encode()).decode()  # what `docker login` writes
    (logged_in / "config.json").write_text(json.dumps({"auths": {private_registry.host: {"auth": stored}}}))
    try:
        launch = ["launch", "headless", "--name", "cli-pull", "--image", name]
        done = _emulate(fresh, logged_in, *launch, "--registry-auth", "--", "true")
        assert done.returncode == 0, done.stderr
        assert f"pulled {name}" in done.stderr and re.search(r"is (Running|Succeeded)", done.stdout)

        refused = _emulate(fresh, nobody, *launch, "--registry-auth", "--", "true")
        assert refused.returncode == 1
        assert f"Docker has no credentials for {private_registry.host}" in refused.stderr
        assert f"docker login {private_registry.host}" in refused.stderr
    finally:
        _forget(docker_client, name)


def _emulate(instance: Instance, docker_config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**instance.env, "DOCKER_CONFIG": str(docker_config)}
    return subprocess.run([sys.executable, "-m", "emulator", *args], env=env, capture_output=True, text=True)


def test_an_offline_machine_can_refuse_to_pull(
    tmp_path: Path, docker_client: docker.DockerClient, monkeypatch: pytest.MonkeyPatch, open_registry: Registry
) -> None:
    monkeypatch.setenv("EMULATE_IMAGE_PULL", "never")
    instance = start_instance(tmp_path, "pytest-never", docker_client)
    try:
        image = f"{open_registry.host}/not/here:1.0"
        refused = instance.http.post("/session", data={"name": "x", "image": image, "type": "headless"})
        assert refused.status_code == 400
        assert f"image '{image}' is not in the local Docker engine and this emulator does not pull" in refused.text
        assert instance.rows() == []
    finally:
        stop_instance(instance, docker_client)


def test_a_registry_gone_silent_fails_the_pull_after_the_stall_limit_and_progress_is_the_owners_alone(
    stalling: Instance, docker_client: docker.DockerClient, open_registry: Registry
) -> None:
    name = _pushed(docker_client, open_registry, "test/silent", payload=16 << 20)
    relay = CuttableRelay(open_registry.port, rate=1 << 20)
    through_relay = name.replace(open_registry.host, relay.host)
    instance = stalling
    try:
        stranger = instance.emulate("users", "add", "stranger").stdout
        token = dict(line.split(": ", 1) for line in stranger.splitlines() if ": " in line)["token"].strip()
        session_id = _launch(instance, through_relay)
        deadline = time.monotonic() + 60
        while not (progress := instance.http.get(f"/session/{session_id}", params={"view": "pull"}).json()):
            assert time.monotonic() < deadline, "the pull never showed"
            time.sleep(0.1)
        assert progress["image"] == through_relay
        # Another user asking for that session's pull gets what skaha answers for a session not theirs.
        theirs = instance.http.get(
            f"/session/{session_id}", params={"view": "pull"}, headers={"Authorization": f"Bearer {token}"}
        )
        assert theirs.status_code == 404
        relay.freeze()
        started = time.monotonic()
        _failed_to_pull(instance, session_id, "the registry stopped sending: nothing came for 3 s")
        assert time.monotonic() - started < 60
    finally:
        relay.cut()
        _forget(docker_client, through_relay)
        _forget(docker_client, name)
