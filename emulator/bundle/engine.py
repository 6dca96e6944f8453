"""Make and load bundles: images through Docker (`docker save` / `docker load`), profiles into the
profiles folder, wheels through pip. Loading checks every checksum before anything is installed, and
everything else that needs no engine (`checks.inspect`) before the engine sees a single name."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import docker
import docker.errors

from emulator import __version__
from emulator.bundle import signing
from emulator.bundle.archive import (
    IMAGES,
    MAX_MANIFEST,
    PROFILES,
    WHEELS,
    Manifest,
    Part,
    Progress,
    check_parts,
    checked_chunks,
    damaged,
    hash_file,
    python_tag,
    write,
)
from emulator.bundle.checks import MAX_PROFILES, image_problem, inspect, profiles_problem, stage_profiles
from emulator.errors import ConfigError, EmulatorError
from emulator.host.images import GATEWAY_IMAGE, split_name
from emulator.profiles import load_profiles
from emulator.runtime.docker import connect, docker_errors
from emulator.settings import REPO_ROOT, Settings

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
        wanted += [settings.service_image, GATEWAY_IMAGE]
    for name in wanted:
        if "@" in name:
            raise ConfigError(
                f"'{name}' names an image by digest, which `docker load` does not keep: give it a tagged name "
                "(emulate images tag) and bundle that"
            )
    choice = Choice([])
    for name in dict.fromkeys(_tagged(n) for n in wanted + optional if "@" not in n):
        if _image_id(client, name) is not None:
            choice.images.append(name)
        elif name in map(_tagged, wanted):
            raise ConfigError(
                f"image '{name}' is not in the local Docker engine: build it (emulate images build), "
                "pull it (docker pull), or leave it out"
            )
        else:
            choice.skipped.append(name)
    if not choice.images:
        raise ConfigError("no images to put in the bundle: name some, or build them first (emulate images build)")
    return choice


def _tagged(name: str) -> str:
    """A name as `docker save` records it: with its tag (latest when none is given)."""
    return ":".join(split_name(name))


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


def _check_saved(saved: Path, names: list[str]) -> None:
    """The engine's archive, read to its end, names every chosen image (an engine that fails part-way
    through a save ends the stream with an error, not with a complete archive)."""
    try:
        with tarfile.open(saved, "r:") as archive:
            for _ in archive:
                pass
            found = saved_names(archive)
    except (tarfile.TarError, EOFError) as exc:
        raise EmulatorError(f"Docker's save of the images broke off ({exc}); nothing was written") from exc
    missing = [name for name in names if name not in found]
    if missing:
        raise EmulatorError(f"Docker's save of the images lacks {', '.join(missing)}; nothing was written")


def _profiles_tar(settings: Settings, target: Path) -> None:
    """The profiles folder, less the backups and hidden files (an editor's or a desktop's, never a
    profile; a bundle carries none): what `bundle load` would refuse is refused here, when it is made."""
    with tarfile.open(target, "w", format=tarfile.PAX_FORMAT) as archive:
        archive.add(settings.profiles_dir, arcname=".", filter=_kept)
    size = target.stat().st_size
    problem = f"is {size} bytes, over the {MAX_PROFILES} a bundle carries" if size > MAX_PROFILES else None
    problem = problem or profiles_problem(target.read_bytes())
    if problem:
        raise ConfigError(f"the profiles folder {settings.profiles_dir} cannot be bundled: it holds {problem}")


def _kept(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
    hidden = any(part.startswith(".") and part != "." for part in info.name.split("/"))
    return None if hidden or BACKUP_SUFFIX in info.name else _plain(info)


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
    key: bytes | None = None,
) -> Manifest:
    """Write a bundle of the chosen images, the profiles and (unless left out) the wheels; signed with
    `key` when one is given (the signature covers the manifest, which holds every part's SHA-256)."""
    for name in choice.images:  # a bundle `bundle load` would refuse is never made
        problem = image_problem(name)
        if problem:
            raise ConfigError(f"cannot make the bundle: {problem}")
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
            _check_saved(work / IMAGES, choice.images)
            _profiles_tar(settings, work / PROFILES)
            manifest.parts[PROFILES], parts[PROFILES] = hash_file(work / PROFILES), work / PROFILES
            if with_wheels:
                wheels = work / "wheels"
                build_wheels(wheels, say)
                for wheel in sorted(wheels.glob("*.whl")):
                    name = f"{WHEELS}{wheel.name}"
                    manifest.parts[name], parts[name] = hash_file(wheel), wheel
            if key is not None:
                manifest.signature = signing.sign(manifest, key)
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
    key: bytes | None = None,
) -> Loaded:
    """Check every checksum, load the images, install the profiles; a second load of the same bundle
    changes nothing.

    First everything that needs no engine is checked (`checks.inspect`: the manifest's size and fields,
    the signature when `key` is given, the image names, the tar's members). Then the profiles and wheels
    are checked, and the profiles unpacked, checked member by member and read as profiles, aside.
    The images' part is checked as it streams into Docker, which receives its last bytes only once the
    whole part has matched (Docker loads nothing from a stream that breaks off), so no image is loaded
    from a bundle that is not intact; its names must be the manifest's. Only then are the profiles
    installed. If Docker fails part-way, the names the load had set are taken back."""
    manifest, where = inspect(path, key)
    with docker_errors():
        client = client or connect()
        before = {image["name"]: _image_id(client, image["name"]) for image in manifest.images}
        new = [image["name"] for image in manifest.images if before[image["name"]] != image["id"]]
        check_parts(path, manifest, where, checking, skip=(IMAGES, PROFILES) if new else (PROFILES,))
        with tempfile.TemporaryDirectory(prefix=".bundle-profiles-") as scratch:
            staged = stage_profiles(path, manifest, where[PROFILES], Path(scratch), checking)
            loaded = Loaded(images=new)
            if new:
                _check_names(path, manifest, where[IMAGES])
                try:
                    chunks = checked_chunks(path, manifest, IMAGES, where[IMAGES], loading)
                    # Not quiet: the engine reports each layer as it registers it, so a long load never
                    # looks like a silent engine to the client's read timeout.
                    for line in client.api.load_image(chunks, quiet=False):
                        if "error" in line:
                            raise EmulatorError(f"Docker could not load the bundle's images: {line['error']}")
                    wrong = [i["name"] for i in manifest.images if _image_id(client, i["name"]) != i["id"]]
                    if wrong:
                        raise damaged(path, f"Docker loaded other images than its manifest names: {', '.join(wrong)}")
                except BaseException:
                    _take_back(client, before)
                    raise
            _install_profiles(settings, staged, loaded)
    return loaded


class _Slice(io.RawIOBase):
    """A part of the bundle file as a file of its own (seekable), for reading a tar inside it."""

    def __init__(self, handle: io.BufferedReader, offset: int, size: int) -> None:
        self._handle, self._offset, self._size, self._position = handle, offset, size, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, position: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._size}[whence]
        self._position = max(0, min(self._size, base + position))
        return self._position

    def readinto(self, buffer: Any) -> int:
        count = min(len(buffer), self._size - self._position)
        self._handle.seek(self._offset + self._position)
        data = self._handle.read(count)
        buffer[: len(data)] = data
        self._position += len(data)
        return len(data)


def saved_names(tar: tarfile.TarFile) -> set[str]:
    """The names a `docker save` archive gives its images (its manifest.json's RepoTags); none when that
    file is missing, not what the engine writes, or larger than any it writes (read before its checksum)."""
    try:
        member = tar.getmember("manifest.json")
        handle = tar.extractfile(member) if member.size <= MAX_MANIFEST else None
        entries = json.loads(handle.read()) if handle else []
        return {str(tag) for entry in entries for tag in entry.get("RepoTags") or []}
    except (KeyError, ValueError, AttributeError, TypeError, RecursionError, tarfile.TarError, EOFError):
        return set()


def _check_names(path: Path, manifest: Manifest, where: tuple[int, int]) -> None:
    """The images' part may name no image its manifest does not (a load would re-point that name here)."""
    try:
        with path.open("rb") as handle, tarfile.open(fileobj=_Slice(handle, *where), mode="r:") as saved:
            names = saved_names(saved)
    except (tarfile.TarError, EOFError) as exc:
        raise damaged(path, f"its images part is not a tar file: {exc}") from exc
    listed = {image["name"] for image in manifest.images}
    if not names or not names <= listed:
        extra = ", ".join(sorted(names - listed)) or "none at all"
        raise damaged(path, f"its images part names images its manifest does not list ({extra})")


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


def _backup(path: Path) -> Path:
    """Where the profile being replaced is kept: NAME.before-bundle, or .before-bundle.2, ... (never over one)."""
    candidate, number = path.with_name(path.name + BACKUP_SUFFIX), 1
    while candidate.exists():
        number += 1
        candidate = path.with_name(f"{path.name}{BACKUP_SUFFIX}.{number}")
    return candidate


def _install_profiles(settings: Settings, incoming: Path, loaded: Loaded) -> None:
    """The staged profiles into the profiles folder: new files added, identical ones left, different
    ones replaced (the previous kept beside as NAME.before-bundle, which is never read as a profile).
    Each file is written aside and renamed over, so none is ever half-written."""
    target = settings.profiles_dir
    for source in sorted(p for p in incoming.rglob("*") if p.is_file()):
        relative = source.relative_to(incoming)
        destination = target / relative
        if destination.exists() and destination.read_bytes() == source.read_bytes():
            continue
        destination.parent.mkdir(parents=True, exist_ok=True)
        if destination.exists():
            shutil.copy2(destination, _backup(destination))
            loaded.profiles_replaced.append(str(relative))
        else:
            loaded.profiles_added.append(str(relative))
        draft = destination.with_name(f".{destination.name}.bundle-new")
        shutil.copy2(source, draft)
        draft.replace(destination)
