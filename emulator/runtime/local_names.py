"""The three-part names local images are listed and launched by: `localhost/<project>/<name>:<tag>`.

skaha names every image `registry/project/name:tag`, and clients lean on that shape (CANFAR's Science Portal 2.0
drops any other id). An image built or tagged here with no registry (`skaha-emulator/notebook:latest`) has no
registry to name, so it is listed under `localhost/`, which says plainly that it is this engine's, never a CANFAR
registry's: Podman files such images under that very name. Docker does not, so a launch by the `localhost/` name
runs the local image it stands for (`local_name`); the old name keeps working as it is.

Pure: no engine here; the runtime asks its engine for the exact name first and for `local_name` only when that
is not there, so an image really pulled from a registry at `localhost` is still that image.
"""

from __future__ import annotations

from docker_image.digest import InvalidDigest
from docker_image.reference import InvalidReference, Reference

LOCAL_REGISTRY = "localhost"


def _parts(reference: str) -> tuple[str, str, str | None, str | None, bool] | None:
    """(registry, path, tag, digest, whether the registry was written out), or None for no valid reference."""
    try:
        parsed = Reference.parse_normalized_named(reference)
    except (InvalidReference, InvalidDigest, ValueError):
        return None
    registry, path = parsed.split_hostname()
    written = reference.startswith(f"{registry}/")
    return str(registry), str(path), parsed["tag"], parsed["digest"], written


def listed_name(tag: str) -> str:
    """The name a local image's tag is listed under: `localhost/<project>/<name>:<tag>` for a tag that names no
    registry and has a project and a name (`alpine:3` is Docker's `library/alpine:3`); any other tag as it is (one
    with a registry is that registry's; a longer path, such as a snapshot's `snapshot/<user>/<name>`, has no
    three-part form)."""
    parts = _parts(tag)
    if parts is None:
        return tag
    _, path, version, digest, written = parts
    if written or digest is not None or version is None or path.count("/") != 1:
        return tag
    return f"{LOCAL_REGISTRY}/{path}:{version}"


def local_name(reference: str) -> str | None:
    """The local image name a `localhost/<project>/<name>:<tag>` reference stands for (`<project>/<name>:<tag>`);
    None for any other reference (another registry, `localhost:5000`, a digest, another shape)."""
    parts = _parts(reference)
    if parts is None:
        return None
    registry, path, version, digest, _ = parts
    if registry != LOCAL_REGISTRY or digest is not None or version is None or path.count("/") != 1:
        return None
    return f"{path}:{version}"


def is_three_part(image_id: str) -> bool:
    """Whether an id has skaha's shape `registry/project/name:tag`, the first part a registry host (by the
    distribution grammar: it has a dot or a port, or is `localhost`)."""
    parts = _parts(image_id)
    if parts is None:
        return False
    registry, path, version, digest, written = parts
    return written and digest is None and version is not None and path.count("/") == 1 and bool(registry)
