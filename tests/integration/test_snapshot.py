"""A session saved as an image (`emulate snapshot`): what was pip-installed into the image's Python is there in
a new session from it, and nothing of /arc, /scratch or the session's own configuration is in the image; the
image is its owner's alone. On the signed-in instance, whose users alice and bob share a group."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tarfile
import time
import zipfile
from collections.abc import Iterator
from contextlib import suppress
from typing import Any

import docker
import docker.errors
import httpx
import pytest

from emulator import labels
from emulator.core import snapshots
from tests.factories import built_test_images
from tests.instance import INSTANCE, Instance, Person

pytestmark = pytest.mark.slow

PACKAGE = "snapshotprobe"
SITE = "/opt/jupyter/lib/python3.11/site-packages"


def _api(instance: Instance, person: Person) -> httpx.Client:
    headers = {"Authorization": f"Bearer {person.token}"}
    return httpx.Client(base_url=f"{instance.url}/skaha/v0", headers=headers, timeout=60)


def _wheel() -> tuple[str, bytes]:
    """A pure-Python wheel made here (no index, no network): its file name and its bytes."""
    stem = f"{PACKAGE}-1.0"
    files = {
        f"{PACKAGE}/__init__.py": "ANSWER = 42\n",
        f"{stem}.dist-info/METADATA": f"Metadata-Version: 2.1\nName: {PACKAGE}\nVersion: 1.0\n",
        f"{stem}.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    files[f"{stem}.dist-info/RECORD"] = "".join(f"{path},,\n" for path in [*files, f"{stem}.dist-info/RECORD"])
    data = io.BytesIO()
    with zipfile.ZipFile(data, "w") as archive:
        for path, text in files.items():
            archive.writestr(path, text)
    return f"{stem}-py3-none-any.whl", data.getvalue()


def _tar(name: str, data: bytes, uid: int) -> bytes:
    """One file for put_archive, owned by the session's user (a 0700 home is theirs alone)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        info = tarfile.TarInfo(name)
        info.size, info.uid, info.gid, info.mode = len(data), uid, uid, 0o644
        archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _running(api: httpx.Client, image: str, name: str) -> str:
    answer = api.post("/session", data={"name": name, "image": image, "type": "notebook"})
    assert answer.status_code == 200, answer.text
    session_id = answer.text.strip()
    deadline = time.monotonic() + 120
    while (status := api.get(f"/session/{session_id}").json()["status"]) != "Running":
        assert status == "Pending" and time.monotonic() < deadline, api.get(f"/session/{session_id}?view=events").text
        time.sleep(0.1)
    return session_id


def _run(container: Any, line: str) -> str:
    """A shell line in the session, as its user (the container's own user)."""
    code, output = container.exec_run(["sh", "-c", line])
    assert code == 0, output.decode()
    return str(output.decode())


def _files(container: Any, path: str) -> list[str]:
    """The files (not folders) a created, never started, container of the image holds under `path`: the image's
    own, no mounts."""
    try:
        chunks, _ = container.get_archive(path)
    except docker.errors.NotFound:
        return []
    with tarfile.open(fileobj=io.BytesIO(b"".join(chunks))) as archive:
        return [member.name for member in archive if not member.isdir()]


@pytest.fixture(scope="module")
def writable_site(docker_client: docker.DockerClient) -> Iterator[str]:
    with built_test_images(docker_client, ["writable-site"], prefix=f"{INSTANCE}-") as tags:
        yield tags["writable-site"]


def _snapshot_by_cli(instance: Instance, person: Person, session_id: str) -> dict[str, Any]:
    env = {**instance.env, "EMULATE_TOKEN": person.token}
    done = subprocess.run(
        [sys.executable, "-m", "emulator", "snapshot", session_id, "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    saved: dict[str, Any] = json.loads(done.stdout)
    return saved


def _check_the_image(docker_client: docker.DockerClient, name: str, original: str, session_id: str) -> None:
    """Its configuration is the original image's; its labels say whose it is; its files hold the package and
    nothing written under /arc or /scratch."""
    made, before = docker_client.images.get(name).attrs, docker_client.images.get(original).attrs
    for key in ("Env", "Cmd", "Entrypoint", "User", "WorkingDir", "ExposedPorts"):
        assert made["Config"].get(key) == before["Config"].get(key), key
    assert not (made.get("ContainerConfig") or {}).get("Env")  # no record of the session's container
    image_labels = made["Config"].pop("Labels")
    assert session_id not in json.dumps(made["Config"])  # JUPYTER_TOKEN, CANFAR_TOKEN: the session's own
    assert image_labels["io.canfar.skaha.session.type"] == "notebook,headless"  # what the image declared
    assert image_labels["io.skaha-emulator.snapshot.owner"] == "alice"
    assert image_labels["io.skaha-emulator.snapshot.session"] == session_id
    assert image_labels["io.skaha-emulator.snapshot.image"] == original
    throwaway = docker_client.containers.create(name, command=["true"], entrypoint=[])
    try:
        assert f"{PACKAGE}/__init__.py" in _files(throwaway, f"{SITE}/{PACKAGE}")
        # The mount points, and the engine's folders for the working directory under them, and nothing in them.
        assert _files(throwaway, "/arc") == []
        assert _files(throwaway, "/scratch") == []
        assert _files(throwaway, "/tmp/outside-arc.txt") == ["outside-arc.txt"]  # the container's own files
    finally:
        throwaway.remove(force=True)


def _made_by(docker_client: docker.DockerClient, instance: Instance) -> set[str]:
    """The images an instance's snapshots made: theirs, and a commit's step (its container's labels), if any."""
    name = instance.env["EMULATE_INSTANCE"]
    found = set()
    for label in (f"{labels.SNAPSHOT_INSTANCE}={name}", f"{labels.INSTANCE}={name}"):
        found |= {image.id for image in docker_client.images.list(all=True, filters={"label": label})}
    return found


def _refusals(
    secured: Instance, alice: httpx.Client, docker_client: docker.DockerClient, session_id: str, image: str
) -> None:
    """Names that are not valid, not hers, or taken by an image that is not a snapshot of hers: 400, nothing made."""
    taken = f"snapshot/alice/{INSTANCE}-taken:1"
    docker_client.images.get(image).tag(taken)
    try:
        before = _made_by(docker_client, secured)
        for tag, words in (
            (taken, "is here already and is not a snapshot of yours"),
            ("team/tools:1", "is outside your snapshots"),
            ("Tools:1", "is not a valid image name"),
            ("tools@sha256:" + "a" * 64, "is not a valid image name"),
        ):
            answer = alice.post(f"/session/{session_id}", data={"action": "snapshot", "tag": tag})
            assert answer.status_code == 400 and words in answer.text, (tag, answer.text)
        assert _made_by(docker_client, secured) == before
        assert docker_client.images.get(taken).id == docker_client.images.get(image).id
    finally:
        docker_client.images.remove(taken)


def test_a_snapshot_keeps_what_was_installed_and_nothing_of_arc_or_scratch(
    secured: Instance, people: dict[str, Person], docker_client: docker.DockerClient, writable_site: str
) -> None:
    alice, bob = _api(secured, people["alice"]), _api(secured, people["bob"])
    made: list[str] = []
    try:
        session_id = _running(alice, writable_site, "tools")
        container = secured.container(session_id)
        wheel, data = _wheel()
        uid = int(alice.get(f"/session/{session_id}").json()["runAsUID"])
        assert container.put_archive("/arc/home/alice", _tar(wheel, data, uid))
        _run(container, f"pip install --no-index --no-deps --no-cache-dir --quiet /arc/home/alice/{wheel}")
        _run(container, "echo mine > /arc/home/alice/arc-only.txt && echo fleeting > /scratch/scratch-only.txt")
        _run(container, "echo kept > /tmp/outside-arc.txt")
        _refusals(secured, alice, docker_client, session_id, writable_site)

        saved = _snapshot_by_cli(secured, people["alice"], session_id)
        name = saved["image"]
        made.append(name)
        assert name.startswith(f"snapshot/alice/{INSTANCE}-writable-site:tools-")
        assert saved["launch"] == f"emulate launch notebook --image {name}"
        _check_the_image(docker_client, name, writable_site, session_id)

        # The owner's alone: in her catalogue, not in her group-mate's; he is told it is not here, in the words
        # a snapshot's name that does not exist gets, and cannot save her session either.
        assert name in [entry["id"] for entry in alice.get("/image").json()]
        assert name not in [entry["id"] for entry in bob.get("/image").json()]
        refused = bob.post("/session", data={"name": "theirs", "image": name, "type": "notebook"})
        assert (refused.status_code, refused.text.strip()) == (400, snapshots.not_here(name))
        missing = "snapshot/alice/nothing:1"
        absent = bob.post("/session", data={"name": "none", "image": missing, "type": "notebook"})
        assert (absent.status_code, absent.text.strip()) == (400, snapshots.not_here(missing))
        assert bob.post(f"/session/{session_id}", data={"action": "snapshot"}).status_code == 404

        # It outlives its session: a new session from it has the package.
        assert alice.delete(f"/session/{session_id}").status_code == 200
        again = _running(alice, name, "again")
        assert _run(secured.container(again), f"python3 -c 'import {PACKAGE}; print({PACKAGE}.ANSWER)'") == "42\n"
    finally:
        for session in alice.get("/session").json():
            alice.delete(f"/session/{session['id']}")
        for name in made:
            with suppress(docker.errors.ImageNotFound):
                docker_client.images.remove(name, force=True)
