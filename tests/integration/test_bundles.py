"""Workshop bundles: made where there is network, carried, loaded where there is none."""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from emulator.bundle.archive import IMAGES, PROFILES, hash_file, members, read_manifest, write
from emulator.host.images import GATEWAY_IMAGE
from emulator.settings import REPO_ROOT, load_settings
from tests.instance import free_port, remove_instance
from tests.registry import unique_image

pytestmark = pytest.mark.slow

NOTEBOOK = "skaha-emulator/notebook:latest"


def _emulate(env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([sys.executable, "-m", "emulator", *args], env=env, capture_output=True, text=True)
    if check and result.returncode != 0:
        raise AssertionError(f"emulate {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


@pytest.fixture
def workshop(tmp_path: Path, docker_client: docker.DockerClient) -> Iterator[tuple[dict[str, str], Path, str]]:
    """A profiles folder of its own, a small image, and a bundle of both (no platform, no wheels)."""
    profiles = tmp_path / "profiles"
    shutil.copytree(REPO_ROOT / "profiles", profiles)
    env = {**os.environ, "EMULATE_PROFILES_DIR": str(profiles), "EMULATE_INSTANCE": "pytest-bundle"}
    image = unique_image(docker_client, "bundle-test/job:1.0", payload_bytes=1 << 20)
    bundle = tmp_path / "small.bundle"
    _emulate(env, "bundle", "create", str(bundle), image, "--without-platform", "--without-wheels")
    yield env, bundle, image
    _forget(docker_client, image)


def _forget(client: docker.DockerClient, name: str) -> None:
    with contextlib.suppress(docker.errors.ImageNotFound):
        client.images.remove(name, force=True)


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_bundle_carries_its_images_and_profiles_and_loading_twice_changes_nothing(
    workshop: tuple[dict[str, str], Path, str], docker_client: docker.DockerClient
) -> None:
    env, bundle, image = workshop
    image_id = docker_client.images.get(image).id
    listing = _emulate(env, "bundle", "ls", str(bundle)).stdout
    assert image in listing and image_id.removeprefix("sha256:")[:12] in listing

    _forget(docker_client, image)
    profiles = Path(env["EMULATE_PROFILES_DIR"])
    (profiles / "notebook.yaml").unlink()  # a profile this machine lacks comes with the bundle
    first = _emulate(env, "bundle", "load", str(bundle)).stdout
    assert image in first and "notebook.yaml (added)" in first
    assert docker_client.images.get(image).id == image_id  # the very image, by id
    assert (profiles / "notebook.yaml").read_bytes() == (REPO_ROOT / "profiles" / "notebook.yaml").read_bytes()

    before = _snapshot(profiles)
    again = _emulate(env, "bundle", "load", str(bundle)).stdout
    assert "nothing changed" in again
    assert _snapshot(profiles) == before


def test_a_replaced_profile_is_kept_beside_and_a_backup_is_never_overwritten(
    workshop: tuple[dict[str, str], Path, str],
) -> None:
    env, bundle, _ = workshop
    profiles = Path(env["EMULATE_PROFILES_DIR"])
    notebook = profiles / "notebook.yaml"
    original = notebook.read_bytes()
    for edit in (b"# a local edit\n", b"# another local edit\n"):
        notebook.write_bytes(edit + original)
        out = _emulate(env, "bundle", "load", str(bundle)).stdout
        assert "notebook.yaml (replaced" in out
        assert notebook.read_bytes() == original
    assert (profiles / "notebook.yaml.before-bundle").read_bytes() == b"# a local edit\n" + original
    assert (profiles / "notebook.yaml.before-bundle.2").read_bytes() == b"# another local edit\n" + original


def test_a_bundle_whose_profiles_do_not_load_installs_nothing(
    workshop: tuple[dict[str, str], Path, str], docker_client: docker.DockerClient, tmp_path: Path
) -> None:
    """As a bundle from a newer emulator, whose profiles this one cannot read: intact, but refused whole."""
    env, bundle, image = workshop
    manifest = read_manifest(bundle)
    parts = {}
    with bundle.open("rb") as handle:
        for name, (offset, size) in members(bundle, manifest).items():
            handle.seek(offset)
            parts[name] = tmp_path / name.replace("/", "_")
            parts[name].write_bytes(handle.read(size))
    newer = tmp_path / "newer-profiles.tar"
    with tarfile.open(parts[PROFILES]) as old, tarfile.open(newer, "w") as new:
        for member in old.getmembers():
            data = old.extractfile(member) if member.isfile() else None
            if member.name.endswith("notebook.yaml"):
                text = b"type: notebook\nport: [a, port, this, emulator, cannot, read]\n"
                member.size = len(text)
                new.addfile(member, io.BytesIO(text))
            else:
                new.addfile(member, data)
    parts[PROFILES] = newer
    manifest.parts[PROFILES] = hash_file(newer)
    refused = tmp_path / "newer.bundle"
    write(refused, manifest, parts)

    _forget(docker_client, image)
    profiles = Path(env["EMULATE_PROFILES_DIR"])
    (profiles / "notebook.yaml").unlink()
    before = _snapshot(profiles)
    result = _emulate(env, "bundle", "load", str(refused), check=False)
    assert result.returncode == 1 and "notebook.yaml" in result.stderr, result.stderr
    with pytest.raises(docker.errors.ImageNotFound):
        docker_client.images.get(image)
    assert _snapshot(profiles) == before


def _damaged_copies(bundle: Path, folder: Path) -> dict[str, Path]:
    data = bundle.read_bytes()
    truncated = folder / "truncated.bundle"
    truncated.write_bytes(data[: len(data) // 2])
    where = members(bundle, read_manifest(bundle))
    copies = {}
    for part in (IMAGES, PROFILES):  # one byte flipped in the middle of each part
        offset, size = where[part]
        flipped = bytearray(data)
        flipped[offset + size // 2] ^= 0xFF
        copies[part] = folder / f"corrupted-{part}.bundle"
        copies[part].write_bytes(bytes(flipped))
    foreign = folder / "foreign.tar"
    with tarfile.open(foreign, "w") as archive:
        archive.add(REPO_ROOT / "README.md", arcname="README.md")
    noise = folder / "noise.bundle"
    noise.write_bytes(os.urandom(4096))
    return {
        "truncated": truncated,
        "corrupted images": copies[IMAGES],
        "corrupted profiles": copies[PROFILES],
        "foreign": foreign,
        "noise": noise,
    }


def test_damaged_or_foreign_files_are_refused_and_nothing_is_installed(
    workshop: tuple[dict[str, str], Path, str], docker_client: docker.DockerClient, tmp_path: Path
) -> None:
    env, bundle, image = workshop
    _forget(docker_client, image)
    profiles = Path(env["EMULATE_PROFILES_DIR"])
    (profiles / "notebook.yaml").unlink()
    before = _snapshot(profiles)
    expected = {
        "truncated": "is damaged or incomplete",
        "corrupted images": f"{IMAGES} does not match its SHA-256",
        "corrupted profiles": f"{PROFILES} does not match its SHA-256",
        "foreign": "is not a skaha-emulator bundle",
        "noise": "is not a skaha-emulator bundle",
    }
    for kind, path in _damaged_copies(bundle, tmp_path).items():
        result = _emulate(env, "bundle", "load", str(path), check=False)
        assert result.returncode == 1, (kind, result.stdout, result.stderr)
        assert expected[kind] in result.stderr, (kind, result.stderr)
        assert "Traceback" not in result.stderr
        with pytest.raises(docker.errors.ImageNotFound):
            docker_client.images.get(image)
        assert _snapshot(profiles) == before, kind
    missing = _emulate(env, "bundle", "load", str(tmp_path / "nothere.bundle"), check=False)
    assert missing.returncode == 1 and "no bundle at" in missing.stderr


@pytest.mark.alone  # it removes the platform's and the notebook's images until the bundle brings them back
def test_a_machine_with_no_network_goes_from_a_clean_clone_to_a_running_notebook(
    tmp_path: Path, docker_client: docker.DockerClient
) -> None:
    """`make offline BUNDLE=` runs with no network at all (`unshare -n`: the Docker socket is a file);
    the platform's and the notebook's images come from the bundle, the venv from its wheels."""
    if shutil.which("unshare") is None or os.geteuid() != 0:
        pytest.fail("this test needs unshare and root (as CI has)")
    bundle = tmp_path / "workshop.bundle"
    _emulate(dict(os.environ), "bundle", "create", str(bundle), "--type", "notebook")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "--quiet", str(REPO_ROOT), str(clone)], check=True)
    platform = (load_settings().service_image, GATEWAY_IMAGE)
    kept = {name: docker_client.images.get(name).id for name in (*platform, NOTEBOOK)}
    instance = "pytest-offline"
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("EMULATE_", "VIRTUAL_ENV", "PIP_")) and key != "PYTHONPATH"
    }
    env.update(
        EMULATE_INSTANCE=instance,
        EMULATE_PORT=str(free_port()),
        EMULATE_STATE_DIR=str(tmp_path / "state"),
        EMULATE_CONFIG_DIR=str(tmp_path / "config"),
        EMULATE_ARC_DIR=str(tmp_path / "arc"),
        PATH=os.pathsep.join(p for p in env["PATH"].split(os.pathsep) if ".venv" not in p),
    )
    try:
        for name in kept:  # the bundle must bring them back
            docker_client.images.remove(name, force=True)
        started = time.monotonic()
        offline = subprocess.run(
            ["unshare", "-n", "make", "offline", f"BUNDLE={bundle}"], cwd=clone, env=env, capture_output=True, text=True
        )
        assert offline.returncode == 0, f"{offline.stdout}\n{offline.stderr}"
        for name, image_id in kept.items():
            assert docker_client.images.get(name).id == image_id
        emulate = [str(clone / ".venv" / "bin" / "emulate")]
        up = subprocess.run([*emulate, "up"], cwd=clone, env=env, capture_output=True, text=True)
        assert up.returncode == 0, f"{up.stdout}\n{up.stderr}"
        launch = subprocess.run([*emulate, "launch", "notebook"], cwd=clone, env=env, capture_output=True, text=True)
        assert launch.returncode == 0 and "is Running" in launch.stdout, f"{launch.stdout}\n{launch.stderr}"
        print(f"clean clone to a Running notebook, no network: {time.monotonic() - started:.1f} s")
    finally:
        for name, image_id in kept.items():  # whatever happened, the suite's images are as they were
            try:
                docker_client.images.get(name)
            except docker.errors.ImageNotFound:
                docker_client.images.get(image_id).tag(*name.rsplit(":", 1))
        subprocess.run(
            [str(clone / ".venv" / "bin" / "emulate"), "down", "--remove-sessions"], env=env, capture_output=True
        )
        remove_instance(docker_client, instance)
