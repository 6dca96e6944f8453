"""The bundle file, with the standard library only.

A bundle is an uncompressed tar (image layers are compressed already, and a plain tar loads at
disk speed):

    manifest.json   first: format, version, what the bundle holds, the SHA-256 and size of every other
                    member, and (optionally) a signature over all of that (`signing`)
    images.tar      one `docker save` of all its images (layers they share are stored once)
    profiles.tar    the session profiles folder
    wheels/*.whl    what the emulator's own virtual environment needs, for pip's no-index mode

Nothing is trusted before its checksum is: `verify` reads every member and compares. A bundle is made by
strangers as often as by us, so the manifest is read under a size cap and checked field by field, and the
tar's members are refused when they are not plain files under the names the manifest lists (no absolute
name, no `..`, no link, no device) before anything is taken out.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import platform
import queue
import re
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
# A manifest lists a few images (~200 bytes each) and some dozens of wheels (~150 bytes each): a workshop's
# is ~10 KB. 1 MiB is a hundred times that, and small enough to read and parse at once without a thought.
MAX_MANIFEST = 1 << 20
SIGNATURE_SCHEME = "hmac-sha256"  # `signing`: the standard library's HMAC, no dependency beyond it

# What a manifest's fields may hold, checked before anything reads them as names or paths (or prints them).
_WORD = re.compile(r"[A-Za-z0-9._:+-]{1,64}")  # its date, versions and Python tag
_HEX = re.compile(r"[0-9a-f]{64}")
_KEY_ID = re.compile(r"[0-9a-f]{16}")
_IMAGE_ID = re.compile(r"[A-Za-z0-9:]{0,80}")  # compared with the engine's ids, never sent to it
# As emulator.core.policy's: what the image reference grammar can ever accept (that module, with the
# grammar itself, needs the virtual environment; this file may not). `checks` applies the grammar.
_IMAGE_CHARACTERS = re.compile(r"[a-zA-Z0-9._:/@\-\[\]]+")
MAX_IMAGE_NAME = 512
# A file name that is only a file name: no '/', no leading '.' (so no '..', no hidden file), no space.
PLAIN_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._+-]{0,254}")

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


@dataclass(frozen=True)
class Signature:
    scheme: str  # SIGNATURE_SCHEME
    key: str  # which key made it (a fingerprint of it, see `signing.key_id`)
    mac: str  # over `Manifest.body()`, which holds every part's SHA-256: so over everything


@dataclass
class Manifest:
    created: str
    emulator_version: str
    python: str
    images: list[dict[str, str]] = field(default_factory=list)  # [{"name": ..., "id": ...}], one per name
    parts: dict[str, Part] = field(default_factory=dict)  # member name -> checksum and size
    signature: Signature | None = None

    def body(self) -> bytes:
        """Everything but the signature, in one canonical form: what a signature covers. Read back from
        a bundle (every field checked for its exact type), a manifest gives these very bytes again."""
        document: dict[str, object] = {"format": FORMAT, "version": VERSION, **asdict(self)}
        del document["signature"]
        return json.dumps(document, indent=2, sort_keys=True).encode()

    def to_json(self) -> bytes:
        document = json.loads(self.body())
        if self.signature is not None:  # a field older emulators pass over: they load it as unsigned
            document["signature"] = asdict(self.signature)
        return json.dumps(document, indent=2, sort_keys=True).encode()

    @classmethod
    def from_json(cls, data: bytes, where: Path) -> Manifest:
        try:
            document = json.loads(data)
        except (ValueError, RecursionError) as exc:  # RecursionError: nested deeper than the decoder goes
            raise not_a_bundle(where, f"its manifest is not JSON: {exc}") from None
        if not isinstance(document, dict) or document.get("format") != FORMAT:
            raise not_a_bundle(where, "its manifest is not one of ours")
        if document.get("version") != VERSION:
            maker = _shown(document.get("emulator_version"))
            raise ConfigError(
                f"{where} is a bundle of format version {_shown(document.get('version'))}; this emulator reads "
                f"version {VERSION}: load it with the emulator version that made it ({maker})"
            )
        try:
            return cls(
                created=_text(document, "created", _WORD),
                emulator_version=_text(document, "emulator_version", _WORD),
                python=_text(document, "python", _WORD),
                images=[_image(entry, f"images[{n}]") for n, entry in enumerate(_list(document, "images"))],
                parts={_part_name(name): _part(value, f"parts.{name}") for name, value in _dict(document, "parts")},
                signature=_signature(document.get("signature")),
            )
        except _Bad as exc:
            raise refused(where, f"its manifest's {exc}") from None

    @property
    def wheels(self) -> list[str]:
        return sorted(name for name in self.parts if name.startswith(WHEELS))


class _Bad(Exception):
    """A manifest field that is not what it must be (its path and why)."""


def _shown(value: object) -> str:
    """A value from a bundle as a message may hold it: one line, printable, short."""
    if isinstance(value, (list, dict)):  # never its whole text (a huge or deep one would be a message's end)
        return f"a {type(value).__name__}"
    text = ascii(value)[1:-1] if isinstance(value, str) else repr(value)  # ascii(): no control character
    return text if len(text) <= 80 else f"{text[:80]}…"


def _text(document: dict[str, object], key: str, pattern: re.Pattern[str], where: str = "") -> str:
    value = document.get(key)
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise _Bad(f"{where or key} is missing or not what it must be ({_shown(value)})")
    return value


def _list(document: dict[str, object], key: str) -> list[object]:
    value = document.get(key)
    if not isinstance(value, list):
        raise _Bad(f"{key} is missing or not a list")
    return value


def _dict(document: dict[str, object], key: str) -> list[tuple[str, object]]:
    value = document.get(key)
    if not isinstance(value, dict):
        raise _Bad(f"{key} is missing or not a mapping")
    return list(value.items())


def _image(entry: object, where: str) -> dict[str, str]:
    if not isinstance(entry, dict):
        raise _Bad(f"{where} is not a mapping")
    name = entry.get("name")
    problem = image_name_problem(name)
    if problem:
        raise _Bad(f"{where}.name {problem}")
    return {"name": str(name), "id": _text(entry, "id", _IMAGE_ID, f"{where}.id")}


def image_name_problem(name: object) -> str | None:
    """What makes a name no image reference and unsafe to hand anyone (in a path, on a terminal), by
    the characters and parts the grammar allows; `checks.image_problem` applies the grammar itself."""
    if not isinstance(name, str) or not name:
        return "is missing or not a string"
    if len(name) > MAX_IMAGE_NAME:
        return f"'{_shown(name)}' is longer than an image reference may be ({MAX_IMAGE_NAME})"
    if not _IMAGE_CHARACTERS.fullmatch(name):
        return f"'{_shown(name)}' has characters an image reference cannot have"
    if any(not part or part.startswith(".") for part in name.split("/")):
        return f"'{_shown(name)}' is not an image reference (an empty part, or one beginning with '.')"
    return None


def _part_name(name: str) -> str:
    """Only the members a bundle is made of: the images, the profiles, and wheels under plain names."""
    wheel = name.removeprefix(WHEELS)
    if name in (IMAGES, PROFILES) or (wheel != name and PLAIN_NAME.fullmatch(wheel) and wheel.endswith(".whl")):
        return name
    raise _Bad(f"parts name a member a bundle does not hold ('{_shown(name)}')")


def _part(value: object, where: str) -> Part:
    if not isinstance(value, dict):
        raise _Bad(f"{where} is not a mapping")
    size = value.get("size")
    if type(size) is not int or size < 0:  # not bool, not float (JSON's 1e999 is a float)
        raise _Bad(f"{where}.size is not a whole number of bytes ({_shown(size)})")
    return Part(_text(value, "sha256", _HEX, f"{where}.sha256"), size)


def _signature(value: object) -> Signature | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise _Bad("signature is not a mapping")
    if value.get("scheme") != SIGNATURE_SCHEME:
        raise _Bad(f"signature is of a scheme this emulator does not know ({_shown(value.get('scheme'))})")
    return Signature(
        SIGNATURE_SCHEME, _text(value, "key", _KEY_ID, "signature.key"), _text(value, "mac", _HEX, "signature.mac")
    )


def not_a_bundle(path: Path, why: str) -> ConfigError:
    return ConfigError(f"{path} is not a skaha-emulator bundle ({why}); make one with `emulate bundle create`")


def damaged(path: Path, why: str) -> ConfigError:
    return ConfigError(f"{path} is damaged or incomplete ({why}); nothing was installed: copy the bundle again")


def refused(path: Path, why: str) -> ConfigError:
    """A bundle that is readable but holds what this emulator will not install, or is not signed as asked."""
    return ConfigError(f"{path} is refused: {why}; nothing was installed")


def member_problem(member: tarfile.TarInfo) -> str | None:
    """Why a tar member may not be taken out, from its header alone: only plain files and folders under
    relative names that do not climb are ever taken out (tarfile's "data" filter would strip a leading
    '/' and install the member anyway, and would keep links that stay inside)."""
    name = _shown(member.name)
    if member.issym() or member.islnk():
        return f"a link, '{name}'"
    if not (member.isreg() or member.isdir()) or member.issparse():
        return f"a device, FIFO or sparse file, '{name}'"
    if member.name.startswith("/"):
        return f"a member with an absolute name, '{name}'"
    if ".." in member.name.split("/"):
        return f"a member whose name climbs out ('..'), '{name}'"
    return None


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
    document = manifest.to_json()
    if len(document) > MAX_MANIFEST:  # what `read_manifest` would refuse is never written
        raise ConfigError(f"the manifest would be {len(document)} bytes, over the {MAX_MANIFEST} a bundle may hold")
    partial = path.with_name(f".{path.name}.partial")
    try:
        with tarfile.open(partial, "w", format=tarfile.PAX_FORMAT) as archive:
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
    except (PermissionError, IsADirectoryError) as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise not_a_bundle(path, f"not a tar file: {exc}") from exc


def read_manifest(path: Path) -> Manifest:
    """What a bundle says it holds (only its first member is read, and only when it is small enough to be a
    manifest: its size is the tar header's, known before a byte of it is read)."""
    with _open(path) as archive:
        try:
            first = archive.next()
        except (tarfile.TarError, EOFError) as exc:
            raise not_a_bundle(path, f"not a tar file: {exc}") from exc
        if first is None or first.name != MANIFEST or not first.isreg() or first.issparse():
            raise not_a_bundle(path, f"it does not begin with {MANIFEST}")
        if first.size > MAX_MANIFEST:
            raise refused(path, f"its manifest is {first.size} bytes, over the {MAX_MANIFEST} a manifest may be")
        handle = archive.extractfile(first)
        assert handle is not None
        try:
            data = handle.read()
        except (tarfile.TarError, EOFError) as exc:  # the file ends inside the manifest
            raise damaged(path, f"it ends inside its manifest: {exc}") from exc
        return Manifest.from_json(data, path)


def members(path: Path, manifest: Manifest) -> dict[str, tuple[int, int]]:
    """Where each part's bytes lie (offset, size), read from the tar's headers alone; a link, device or
    climbing name is refused, and a member the manifest does not list (or lists twice), or a part it
    lists that is not there, makes the bundle damaged."""
    found: dict[str, tuple[int, int]] = {}
    with _open(path) as archive:
        for number, member in enumerate(_Reader(path, archive).members()):
            problem = member_problem(member)
            if problem:
                raise refused(path, f"it holds {problem}")
            if member.name == MANIFEST and number == 0:
                continue
            if member.name not in manifest.parts or member.name in found or not member.isreg():
                raise damaged(path, f"it holds '{_shown(member.name)}', which its manifest does not list (or twice)")
            found[member.name] = (member.offset_data, member.size)
    missing = sorted(set(manifest.parts) - set(found))
    if missing:
        raise damaged(path, f"it ends before {', '.join(missing)}")
    return found


def _read_checked(
    path: Path,
    name: str,
    where: tuple[int, int],
    sha256: str,
    ahead: queue.Queue[bytes | BaseException | None],
    stop: threading.Event,
) -> None:
    """checked_chunks' reader: the part's chunks into `ahead`, then None once they matched `sha256`, or the
    error instead (handed to the consumer, which raises it); it stops early once `stop` is set."""
    offset, size = where
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
        if digest.hexdigest() != sha256:
            raise damaged(path, f"{name} does not match its SHA-256")
        ahead.put(None)
    except BaseException as exc:  # handed to the consumer, which raises it
        ahead.put(exc)


def checked_chunks(
    path: Path, manifest: Manifest, name: str, where: tuple[int, int], progress: Progress = _ignore
) -> Iterator[bytes]:
    """A part's bytes, hashed as they are read. The last chunk is held back until the whole part has
    matched its SHA-256, so whatever consumes the stream (Docker's load) never receives a complete
    part that is wrong: a mismatch raises instead, and the consumer sees a stream that broke off.

    Reading and hashing run on a thread of their own (hashlib releases the GIL), a few chunks ahead
    of the consumer, so the checksum costs next to nothing beside the transfer."""
    _, size = where
    expected = manifest.parts[name]
    if size != expected.size:
        raise damaged(path, f"{name} is {size} bytes, not the {expected.size} its manifest says")
    ahead: queue.Queue[bytes | BaseException | None] = queue.Queue(maxsize=8)
    stop = threading.Event()
    reader = threading.Thread(
        target=_read_checked, args=(path, name, where, expected.sha256, ahead, stop), name=f"check {name}", daemon=True
    )
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


def check_parts(
    path: Path,
    manifest: Manifest,
    where: dict[str, tuple[int, int]],
    progress: Progress = _ignore,
    skip: tuple[str, ...] = (),
) -> None:
    """Read every part (but those skipped) and compare it with the manifest's checksum."""
    for name, place in where.items():
        if name not in skip:
            for _ in checked_chunks(path, manifest, name, place, progress):
                pass


def verify(path: Path, progress: Progress = _ignore, skip: tuple[str, ...] = ()) -> Manifest:
    """Read every part (but those skipped) and compare it with the manifest's checksum."""
    manifest = read_manifest(path)
    check_parts(path, manifest, members(path, manifest), progress, skip)
    return manifest


def extract_wheels(path: Path, destination: Path, manifest: Manifest | None = None) -> list[str]:
    """Take the wheels out, each checked against its SHA-256 as it is written (aside, renamed once whole,
    so a wheel that does not match is never left for pip); their file names. `manifest`: the one read
    already (and its signature checked), else it is read here."""
    manifest = manifest or read_manifest(path)
    where = members(path, manifest)  # every listed part is there, and nothing else, or it says so
    destination.mkdir(parents=True, exist_ok=True)
    written = []
    for name, place in where.items():
        if not name.startswith(WHEELS):
            continue
        wheel = name[len(WHEELS) :]  # a plain file name ending .whl: the manifest's part names were checked
        draft = destination / f".{wheel}.partial"
        try:
            with draft.open("wb") as out:
                for chunk in checked_chunks(path, manifest, name, place):
                    out.write(chunk)
            draft.replace(destination / wheel)
        finally:
            draft.unlink(missing_ok=True)
        written.append(wheel)
    return written
