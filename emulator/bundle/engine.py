"""Make and load bundles: images through Docker (`docker save` / `docker load`), profiles into the
profiles folder, wheels through pip. Loading checks every checksum before anything is installed."""

from __future__ import annotations

import hashlib
import io
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import docker
import docker.errors

from emulator import __version__
from emulator.bundle.archive import (
    IMAGES,
    PROFILES,
    WHEELS,
    Manifest,
    Part,
    Progress,
    checked_chunks,
    damaged,
    hash_file,
    members,
    python_tag,
    read_manifest,
    verify,
    write,
)
from emulator.errors import ConfigError, EmulatorError
from emulator.images import GATEWAY_IMAGE, SERVICE_IMAGE, split_name
from emulator.profiles import load_profiles
from emulator.runtime.docker import connect, docker_errors
from emulator.settings import REPO_ROOT, Settings

PLATFORM_IMAGES = (SERVICE_IMAGE, GATEWAY_IMAGE)
# What pip needs, beside the emulator's dependencies, to make its virtual environment with no index.
INSTALL_TOOLS = ("pip", "setuptools>=77")
BACKUP_SUFFIX = ".before-bundle"


@dataclass
class Choice:
    images: list[str]
    skipped: list[str] = field(default_factory=list)  # named by a profile, but not here (not asked for by name)


def choose_images(
    settings: Settings,
    client: docker.DockerClient,
    types: Iterable[str],
    names: Iterable[str],
    with_platform: bool,
) -> Choice:
    """The images a bundle holds: those named, those of the types' profiles (a desktop's apps too), or
    with neither every image the profiles name that is here; and the platform's own, unless left out."""
    profiles = load_profiles(settings.profiles_dir)
    types, names = list(types), list(names)
    wanted: list[str] = list(names)
    for session_type in types:
        profile = profiles.get(session_type)
        if profile is None:
            raise ConfigError(f"no profile for session type '{session_type}' (known: {', '.join(sorted(profiles))})")
        wanted.append(profile.default_image)
        wanted += [p.default_image for p in profiles.values() if p.attaches_to == session_type]
    optional: list[str] = []
    if not types and not names:
        optional = [p.default_image for p in profiles.values()]
    if with_platform:
        wanted += PLATFORM_IMAGES
    choice = Choice([])
    for name in dict.fromkeys(wanted + optional):
        if _image_id(client, name) is not None:
            choice.images.append(name)
        elif name in wanted:
            raise ConfigError(
                f"image '{name}' is not in the local Docker engine: build it (emulate images build), "
                "pull it (docker pull), or leave it out"
            )
        else:
            choice.skipped.append(name)
    if not choice.images:
        raise ConfigError("no images to put in the bundle: name some, or build them first (emulate images build)")
    return choice


def _image_id(client: docker.DockerClient, name: str) -> str | None:
    try:
        return str(client.images.get(name).id)
    except docker.errors.ImageNotFound:
        return None
    except docker.errors.APIError as exc:
        if exc.status_code == 400:  # not a valid reference
            return None
        raise


def build_wheels(destination: Path, say: Callable[[str], None]) -> None:
    """Wheels of the emulator and everything it needs (and pip's own tools), built where there is network."""
    say("collecting the wheels of the emulator's virtual environment (pip wheel)")
    command = [sys.executable, "-m", "pip", "wheel", "--quiet", "--wheel-dir", str(destination), str(REPO_ROOT)]
    result = subprocess.run([*command, *INSTALL_TOOLS], capture_output=True, text=True)
    if result.returncode != 0:
        tail = "\n".join(result.stderr.strip().splitlines()[-5:])
        raise EmulatorError(f"pip could not collect the wheels (is PyPI reachable?):\n{tail}")


def _save(client: docker.DockerClient, names: list[str], target: Path, progress: Progress) -> Part:
    """One `docker save` of all the images (shared layers once), hashed as it is written."""
    api = client.api
    # The SDK saves one image per call; the engine's endpoint takes several names (layers stored once).
    response = api._get(api._url("/images/get"), params={"names": names}, stream=True)
    api._raise_for_status(response)
    digest, size = hashlib.sha256(), 0
    with target.open("wb") as out:
        for chunk in response.iter_content(chunk_size=1 << 20):
            out.write(chunk)
            digest.update(chunk)
            size += len(chunk)
            progress(len(chunk))
    return Part(digest.hexdigest(), size)


def _profiles_tar(settings: Settings, target: Path) -> None:
    with tarfile.open(target, "w", format=tarfile.PAX_FORMAT) as archive:
        archive.add(
            settings.profiles_dir,
            arcname=".",
            filter=lambda info: None if info.name.endswith(BACKUP_SUFFIX) else _plain(info),
        )


def _plain(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def create(
    settings: Settings,
    path: Path,
    choice: Choice,
    with_wheels: bool,
    say: Callable[[str], None],
    saving: Progress,
    writing: Progress,
    client: docker.DockerClient | None = None,
) -> Manifest:
    """Write a bundle of the chosen images, the profiles and (unless left out) the wheels."""
    with docker_errors():
        client = client or connect()
        images = [{"name": name, "id": _image_id(client, name) or ""} for name in choice.images]
        with tempfile.TemporaryDirectory(prefix=".bundle-", dir=path.parent) as scratch:
            work = Path(scratch)
            parts: dict[str, Path] = {}
            manifest = Manifest(
                created=datetime.now(UTC).replace(microsecond=0).isoformat(),
                emulator_version=__version__,
                python=python_tag(),
                images=images,
            )
            say(f"saving {len(choice.images)} images")
            manifest.parts[IMAGES] = _save(client, choice.images, work / IMAGES, saving)
            parts[IMAGES] = work / IMAGES
            _profiles_tar(settings, work / PROFILES)
            manifest.parts[PROFILES], parts[PROFILES] = hash_file(work / PROFILES), work / PROFILES
            if with_wheels:
                wheels = work / "wheels"
                build_wheels(wheels, say)
                for wheel in sorted(wheels.glob("*.whl")):
                    name = f"{WHEELS}{wheel.name}"
                    manifest.parts[name], parts[name] = hash_file(wheel), wheel
            say(f"writing {path}")
            write(path, manifest, parts, writing)
    return manifest


@dataclass
class Loaded:
    images: list[str] = field(default_factory=list)  # names that are new here, or now name other images
    profiles_added: list[str] = field(default_factory=list)
    profiles_replaced: list[str] = field(default_factory=list)  # the previous ones kept beside, *.before-bundle

    @property
    def changed(self) -> bool:
        return bool(self.images or self.profiles_added or self.profiles_replaced)


def load(
    settings: Settings,
    path: Path,
    checking: Progress,
    loading: Progress,
    client: docker.DockerClient | None = None,
) -> Loaded:
    """Check every checksum, load the images, install the profiles; a second load of the same bundle
    changes nothing.

    The profiles and wheels are checked first. The images' part is checked as it streams into
    Docker, which receives its last bytes only once the whole part has matched (Docker loads nothing
    from a stream that breaks off), so no image is loaded from a bundle that is not intact. If Docker
    fails part-way, the names the load had set are taken back."""
    manifest = read_manifest(path)
    where = members(path, manifest)
    with docker_errors():
        client = client or connect()
        before = {image["name"]: _image_id(client, image["name"]) for image in manifest.images}
        new = [image["name"] for image in manifest.images if before[image["name"]] != image["id"]]
        verify(path, checking, skip=(IMAGES,) if new else ())
        loaded = Loaded(images=new)
        if new:
            try:
                chunks = checked_chunks(path, manifest, IMAGES, where[IMAGES], loading)
                for line in client.api.load_image(chunks, quiet=True):
                    if "error" in line:
                        raise EmulatorError(f"Docker could not load the bundle's images: {line['error']}")
                wrong = [i["name"] for i in manifest.images if _image_id(client, i["name"]) != i["id"]]
                if wrong:
                    raise damaged(path, f"Docker loaded other images than its manifest names: {', '.join(wrong)}")
            except BaseException:
                _take_back(client, before)
                raise
    _install_profiles(settings, path, loaded, where[PROFILES])
    return loaded


def _take_back(client: docker.DockerClient, before: dict[str, str | None]) -> None:
    for name, previous in before.items():
        if _image_id(client, name) == previous:
            continue
        try:
            if previous is None:
                client.images.remove(name, noprune=False)
            else:
                client.images.get(previous).tag(*split_name(name))
        except docker.errors.APIError:
            pass  # best effort: the error that stopped the load is the one to report


def _install_profiles(settings: Settings, path: Path, loaded: Loaded, where: tuple[int, int]) -> None:
    """The bundle's profiles into the profiles folder: new files added, identical ones left, different
    ones replaced (the previous kept beside as NAME.before-bundle, which is never read as a profile)."""
    target = settings.profiles_dir
    offset, size = where
    with path.open("rb") as handle, tempfile.TemporaryDirectory(prefix=".bundle-profiles-") as scratch:
        handle.seek(offset)
        with tarfile.open(fileobj=io.BytesIO(handle.read(size)), mode="r:") as profiles:
            profiles.extractall(scratch, filter="data")
        incoming = Path(scratch)
        load_profiles(incoming)  # a bundle's profiles that do not load are refused before any is installed
        for source in sorted(p for p in incoming.rglob("*") if p.is_file()):
            relative = source.relative_to(incoming)
            destination = target / relative
            if destination.exists() and destination.read_bytes() == source.read_bytes():
                continue
            destination.parent.mkdir(parents=True, exist_ok=True)
            if destination.exists():
                shutil.copy2(destination, destination.with_name(destination.name + BACKUP_SUFFIX))
                loaded.profiles_replaced.append(str(relative))
            else:
                loaded.profiles_added.append(str(relative))
            shutil.copy2(source, destination)


def describe(path: Path) -> Manifest:
    return read_manifest(path)
