"""The bundle file, with the standard library only.

A bundle is an uncompressed tar (image layers are compressed already, and a plain tar loads at
disk speed):

    manifest.json   first: format, version, what the bundle holds, and the SHA-256 and size of every other member
    images.tar      one `docker save` of all its images (layers they share are stored once)
    profiles.tar    the session profiles folder
    wheels/*.whl    what the emulator's own virtual environment needs, for pip's no-index mode

Nothing is trusted before its checksum is: `verify` reads every member and compares.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import platform
import queue
import sys
import tarfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO

from emulator.errors import ConfigError

FORMAT = "skaha-emulator-bundle"
VERSION = 1
MANIFEST = "manifest.json"
IMAGES = "images.tar"
PROFILES = "profiles.tar"
WHEELS = "wheels/"
CHUNK = 1 << 20

Progress = Callable[[int], None]  # told how many more bytes were read or written


def _ignore(_: int) -> None:
    pass


def python_tag() -> str:
    """What the wheels were built for: a machine with another Python or CPU cannot use them."""
    return f"cp{sys.version_info.major}{sys.version_info.minor}-{sys.platform}-{platform.machine()}"


@dataclass(frozen=True)
class Part:
    sha256: str
    size: int


@dataclass
class Manifest:
    created: str
    emulator_version: str
    python: str
    images: list[dict[str, str]] = field(default_factory=list)  # [{"name": ..., "id": ...}], one per name
    parts: dict[str, Part] = field(default_factory=dict)  # member name -> checksum and size

    def to_json(self) -> bytes:
        document = {"format": FORMAT, "version": VERSION, **asdict(self)}
        return json.dumps(document, indent=2, sort_keys=True).encode()

    @classmethod
    def from_json(cls, data: bytes, where: Path) -> Manifest:
        try:
            document = json.loads(data)
            if document.get("format") != FORMAT:
                raise ValueError("not our format")
            if document.get("version") != VERSION:
                maker = document.get("emulator_version")
                raise ConfigError(
                    f"{where} is a bundle of format version {document.get('version')}; this emulator reads "
                    f"version {VERSION}: load it with the emulator version that made it ({maker})"
                )
            return cls(
                created=str(document["created"]),
                emulator_version=str(document["emulator_version"]),
                python=str(document["python"]),
                images=[{"name": str(i["name"]), "id": str(i["id"])} for i in document["images"]],
                parts={str(k): Part(str(v["sha256"]), int(v["size"])) for k, v in document["parts"].items()},
            )
        except ConfigError:
            raise
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise not_a_bundle(where, "its manifest is not one of ours") from exc

    @property
    def wheels(self) -> list[str]:
        return sorted(name for name in self.parts if name.startswith(WHEELS))


def not_a_bundle(path: Path, why: str) -> ConfigError:
    return ConfigError(f"{path} is not a skaha-emulator bundle ({why}); make one with `emulate bundle create`")


def damaged(path: Path, why: str) -> ConfigError:
    return ConfigError(f"{path} is damaged or incomplete ({why}); nothing was installed: copy the bundle again")


def hash_file(path: Path, progress: Progress = _ignore) -> Part:
    digest, size = hashlib.sha256(), 0
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
            progress(len(chunk))
    return Part(digest.hexdigest(), size)


class _Counted:
    """A file being copied, that reports the bytes read from it."""

    def __init__(self, handle: IO[bytes], progress: Progress) -> None:
        self._handle, self._progress = handle, progress

    def read(self, size: int = -1) -> bytes:
        data = self._handle.read(size)
        self._progress(len(data))
        return data


def write(path: Path, manifest: Manifest, parts: dict[str, Path], progress: Progress = _ignore) -> None:
    """Write the bundle: the manifest, then each part (whose checksums the manifest holds already).
    Written beside the target and renamed at the end, so a failure never leaves a half bundle."""
    partial = path.with_name(f".{path.name}.partial")
    try:
        with tarfile.open(partial, "w", format=tarfile.PAX_FORMAT) as archive:
            document = manifest.to_json()
            info = tarfile.TarInfo(MANIFEST)
            info.size = len(document)
            archive.addfile(info, io.BytesIO(document))
            for name, source in parts.items():
                info = tarfile.TarInfo(name)
                info.size = manifest.parts[name].size
                with source.open("rb") as handle:
                    archive.addfile(info, _Counted(handle, progress))
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)


@dataclass
class _Reader:
    path: Path
    archive: tarfile.TarFile

    def members(self) -> Iterator[tarfile.TarInfo]:
        try:
            yield from self.archive
        except (tarfile.TarError, EOFError) as exc:
            raise damaged(self.path, f"it ends early: {exc}") from exc


def _open(path: Path) -> tarfile.TarFile:
    try:
        return tarfile.open(path, "r:")
    except FileNotFoundError:
        raise ConfigError(f"no bundle at {path}") from None
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise not_a_bundle(path, f"not a tar file: {exc}") from exc


def read_manifest(path: Path) -> Manifest:
    """What a bundle says it holds (only its first member is read)."""
    with _open(path) as archive:
        try:
            first = archive.next()
        except (tarfile.TarError, EOFError) as exc:
            raise not_a_bundle(path, f"not a tar file: {exc}") from exc
        if first is None or first.name != MANIFEST or not first.isfile():
            raise not_a_bundle(path, f"it does not begin with {MANIFEST}")
        handle = archive.extractfile(first)
        assert handle is not None
        return Manifest.from_json(handle.read(), path)


def members(path: Path, manifest: Manifest) -> dict[str, tuple[int, int]]:
    """Where each part's bytes lie (offset, size), read from the tar's headers alone; a member the
    manifest does not list, or a part it lists that is not there, makes the bundle damaged."""
    found: dict[str, tuple[int, int]] = {}
    with _open(path) as archive:
        for member in _Reader(path, archive).members():
            if member.name == MANIFEST:
                continue
            if member.name not in manifest.parts or not member.isfile():
                raise damaged(path, f"it holds {member.name!r}, which its manifest does not list")
            found[member.name] = (member.offset_data, member.size)
    missing = sorted(set(manifest.parts) - set(found))
    if missing:
        raise damaged(path, f"it ends before {', '.join(missing)}")
    return found


def checked_chunks(
    path: Path, manifest: Manifest, name: str, where: tuple[int, int], progress: Progress = _ignore
) -> Iterator[bytes]:
    """A part's bytes, hashed as they are read. The last chunk is held back until the whole part has
    matched its SHA-256, so whatever consumes the stream (Docker's load) never receives a complete
    part that is wrong: a mismatch raises instead, and the consumer sees a stream that broke off.

    Reading and hashing run on a thread of their own (hashlib releases the GIL), a few chunks ahead
    of the consumer, so the checksum costs next to nothing beside the transfer."""
    offset, size = where
    expected = manifest.parts[name]
    if size != expected.size:
        raise damaged(path, f"{name} is {size} bytes, not the {expected.size} its manifest says")
    ahead: queue.Queue[bytes | BaseException | None] = queue.Queue(maxsize=8)
    stop = threading.Event()

    def read() -> None:
        digest, remaining = hashlib.sha256(), size
        try:
            with path.open("rb") as handle:
                handle.seek(offset)
                while remaining and not stop.is_set():
                    chunk = handle.read(min(CHUNK, remaining))
                    if not chunk:
                        raise damaged(path, f"{name} ends early")
                    digest.update(chunk)
                    remaining -= len(chunk)
                    ahead.put(chunk)
            if digest.hexdigest() != expected.sha256:
                raise damaged(path, f"{name} does not match its SHA-256")
            ahead.put(None)
        except BaseException as exc:  # handed to the consumer, which raises it
            ahead.put(exc)

    reader = threading.Thread(target=read, name=f"check {name}", daemon=True)
    reader.start()
    held = b""
    try:
        while True:
            item = ahead.get()
            if isinstance(item, BaseException):
                raise item
            if item is None:
                break
            progress(len(item))
            if held:
                yield held
            held = item
        if held:
            yield held
    finally:
        stop.set()
        while reader.is_alive():  # let a reader blocked on a full queue see the stop
            with contextlib.suppress(queue.Empty):
                ahead.get_nowait()
            reader.join(0.01)


def verify(path: Path, progress: Progress = _ignore, skip: tuple[str, ...] = ()) -> Manifest:
    """Read every part (but those skipped) and compare it with the manifest's checksum."""
    manifest = read_manifest(path)
    for name, where in members(path, manifest).items():
        if name not in skip:
            for _ in checked_chunks(path, manifest, name, where, progress):
                pass
    return manifest


def extract_wheels(path: Path, destination: Path) -> list[str]:
    """Take the wheels out, each checked against its SHA-256 as it is written; their file names."""
    manifest = read_manifest(path)
    destination.mkdir(parents=True, exist_ok=True)
    written = []
    for name, where in members(path, manifest).items():  # every listed part is there, or it says so
        if not name.startswith(WHEELS):
            continue
        wheel = name[len(WHEELS) :]
        if "/" in wheel or not wheel.endswith(".whl"):
            raise damaged(path, f"{name!r} is not a wheel")
        with (destination / wheel).open("wb") as out:
            for chunk in checked_chunks(path, manifest, name, where):
                out.write(chunk)
        written.append(wheel)
    return written
