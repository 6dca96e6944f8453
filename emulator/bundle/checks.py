"""What a bundle is checked for before the engine or the profiles folder sees any of it: pure functions
(the bundle file is read; nothing is written but into a scratch folder), so each is tested without Docker.

`archive` checks what the standard library can (sizes, the manifest's fields, the tar's members); here
are the checks that need the virtual environment: the image reference grammar and YAML.
"""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import yaml

from emulator.bundle import signing
from emulator.bundle.archive import (
    IMAGES,
    PLAIN_NAME,
    PROFILES,
    Manifest,
    Progress,
    checked_chunks,
    member_problem,
    members,
    read_manifest,
    refused,
)
from emulator.core.policy import shown, validate_image
from emulator.errors import ConfigError, InvalidRequest
from emulator.profiles import load_profiles

# The profiles part is read into memory to be checked and unpacked: profiles are a few KB of YAML and the
# folders they mount a few small scripts and templates (this repository's: 40 KB in all). 64 MiB leaves
# room for a workshop's own, and bounds what a hostile bundle can make us hold.
MAX_PROFILES = 64 << 20
MAX_PROFILE_MEMBERS = 4096
MAX_PROFILE_DEPTH = 8  # folders within folders beside the profiles
# A profile is ~1 KB; 256 KiB is far beyond any, and bounds the YAML parser's work (which, pure Python,
# is slow on some shapes: it is stopped at MAX_YAML_DEPTH, well before it would take long).
MAX_YAML = 256 << 10
MAX_YAML_DEPTH = 32
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml where it is built in: faster


def inspect(path: Path, key: bytes | None = None) -> tuple[Manifest, dict[str, tuple[int, int]]]:
    """A bundle's manifest and where its parts lie, once everything that needs no engine holds: the
    manifest read under its cap, its signature when a key is given, its image names by the grammar, its
    parts' sizes, and the tar's members (plain files, the very ones listed). Nothing is installed yet."""
    manifest = read_manifest(path)
    if key is not None:
        signing.check(path, manifest, key)  # first: a bundle altered since is said to be, whatever else
    for name in (IMAGES, PROFILES):
        if name not in manifest.parts:
            raise refused(path, f"its manifest lists no {name}")
    for image in manifest.images:
        problem = image_problem(image["name"])
        if problem:
            raise refused(path, f"its manifest's {problem}")
    if manifest.parts[PROFILES].size > MAX_PROFILES:
        raise refused(path, f"its profiles part is {manifest.parts[PROFILES].size} bytes, over {MAX_PROFILES}")
    return manifest, members(path, manifest)


def image_problem(name: str) -> str | None:
    """What keeps a name from reaching the engine: the distribution grammar the sessions' images are held
    to, and a tag (`docker load` keeps no digest, so a bundle names its images by tag)."""
    try:
        validate_image(name)
    except InvalidRequest as exc:
        return exc.message.replace("session image", "image", 1)
    if "@" in name:
        return f"image '{shown(name)}' is named by digest: a bundle names its images by tag"
    return None


def profiles_problem(data: bytes) -> str | None:
    """What is wrong with a profiles part, from its members' headers before any is unpacked: only plain
    files and folders under plain names (no absolute name, no '..', no hidden file, no link or device), not
    too many nor too deep, and each YAML file small and free of anchors and aliases."""
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as archive:
            for number, member in enumerate(archive, 1):
                if number > MAX_PROFILE_MEMBERS:
                    return f"more than {MAX_PROFILE_MEMBERS} files and folders"
                problem = member_problem(member) or _name_problem(member)
                if problem is None and member.isreg() and member.name.endswith((".yaml", ".yml")):
                    problem = _yaml_member_problem(archive, member)
                if problem:
                    return problem
    except (tarfile.TarError, EOFError) as exc:
        return f"not a tar file ({exc})"
    return None


def _name_problem(member: tarfile.TarInfo) -> str | None:
    name = member.name
    while name.startswith("./"):  # how `bundle create` writes them: relative to the profiles folder
        name = name[2:]
    if name == ".":
        return None if member.isdir() else f"a file named '{shown(member.name)}'"
    parts = name.split("/")
    if len(parts) > MAX_PROFILE_DEPTH or not all(PLAIN_NAME.fullmatch(part) for part in parts):
        return f"'{shown(member.name)}', which is not a plain name (letters, digits, '._+-'; no leading '.')"
    return None


def _yaml_member_problem(archive: tarfile.TarFile, member: tarfile.TarInfo) -> str | None:
    where = shown(member.name)
    if member.size > MAX_YAML:  # from the header: nothing is read of a file this big
        return f"'{where}', of {member.size} bytes, over the {MAX_YAML} a YAML file may be"
    handle = archive.extractfile(member)
    assert handle is not None  # a regular file
    try:
        text = handle.read().decode()
    except UnicodeDecodeError:
        return f"'{where}', which is not UTF-8"
    problem = yaml_problem(text)
    return f"'{where}': {problem}" if problem else None


def yaml_problem(text: str) -> str | None:
    """Refuse YAML that could make its parser explode or hang: anchors and aliases (an alias bomb
    expands a few lines into billions of nodes; profiles need none), and nesting deeper than any profile.
    Read as a stream of events, stopped at the first such, so nothing is ever built from it."""
    depth = 0
    try:
        for event in yaml.parse(text, Loader=_YAML_LOADER):
            if isinstance(event, yaml.AliasEvent) or (isinstance(event, yaml.NodeEvent) and event.anchor):
                return "YAML anchors and aliases are not allowed"
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > MAX_YAML_DEPTH:
                    return f"YAML nested deeper than {MAX_YAML_DEPTH}"
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
    except yaml.YAMLError as exc:
        return f"not YAML ({' '.join(str(exc).split())})"
    return None


def stage_profiles(path: Path, manifest: Manifest, where: tuple[int, int], scratch: Path, progress: Progress) -> Path:
    """The profiles part, checked against its SHA-256 and member by member, unpacked into `scratch` and
    read as profiles (a bundle whose profiles do not load is refused before anything is installed)."""
    data = b"".join(checked_chunks(path, manifest, PROFILES, where, progress))
    problem = profiles_problem(data)
    if problem:
        raise refused(path, f"its profiles part holds {problem}")
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as profiles:
        try:
            profiles.extractall(scratch, filter="data")  # checked above; the filter stays as a second guard
        except tarfile.FilterError as exc:
            raise refused(path, f"its profiles part holds {exc}") from exc
    try:
        load_profiles(scratch)
    except ConfigError as exc:  # one line per profile, naming the scratch folder: one line, naming the file
        lines = exc.message.replace(f"{scratch}/", "").splitlines()
        raise refused(path, f"its profiles do not load here: {' '.join('; '.join(lines).split())}") from None
    return scratch
