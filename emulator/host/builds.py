"""An image developer's own image, built from its folder (its Dockerfile) as `docker build` would, with what
`emulate images build` adds: the CAs this machine trusts, progress, and the error's last lines in words.

The folder is sent as it is (`.dockerignore` honoured), plus, where the project has the `ca-certificates/`
folder `emulate init-image` writes (its Dockerfile copies that folder in and runs update-ca-certificates),
the bundle image builds trust here, added to the context only: the folder itself is never written. The
image is labelled with a digest of what was sent (names, modes, contents; never times), so asking again
for an image whose folder has not changed builds nothing at all (`Built.built` is False).
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import docker
import docker.errors
from docker.utils.build import create_archive, exclude_paths

from emulator import labels
from emulator.errors import ConfigError, EmulatorError
from emulator.runtime.docker import connect, docker_errors
from emulator.settings import Settings

# Build progress lines: Docker's legacy builder says "Step 1/3 : ...", Podman's buildah "STEP 1/3: ...".
STEP = re.compile(r"^(Step|STEP) \d+/\d+ ?:")
_BOOKKEEPING = re.compile(r"^ ---> |^Removing intermediate container ")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")  # the colours the builder gives a step's stderr
CA_FOLDER = "ca-certificates"
CA_IN_CONTEXT = f"{CA_FOLDER}/skaha-emulator-extra-ca.crt"
ERROR_LINES = 12


class BuildFailed(EmulatorError):
    """The Dockerfile did not build; the message holds the engine's error and the build's last lines."""


@dataclass(frozen=True)
class Built:
    tag: str
    image_id: str
    context_digest: str
    built: bool  # False: the image under `tag` was already made from this very context
    seconds: float


def ignored_patterns(folder: Path) -> list[str]:
    """.dockerignore as the engine's own client reads it: one pattern a line, blank lines and comments out."""
    ignore = folder / ".dockerignore"
    if not ignore.is_file():
        return []
    lines = (line.strip() for line in ignore.read_text().splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def context_files(folder: Path, dockerfile: str = "Dockerfile") -> list[str]:
    """What of `folder` goes to the engine, relative and sorted (as the Docker SDK's build sends it)."""
    return sorted(exclude_paths(str(folder), ignored_patterns(folder), dockerfile=dockerfile))


def context_digest(folder: Path, files: list[str], extra: dict[str, str]) -> str:
    """A digest of the context: each entry's name, kind, mode and content (a link's target); times never count,
    so a checkout or a touch that changes nothing builds nothing."""
    digest = hashlib.sha256()
    for name in files:
        path = folder / name
        info = path.lstat()
        digest.update(f"{name}\0{info.st_mode:o}\0".encode())
        if path.is_symlink():
            digest.update(os.readlink(path).encode())
        elif path.is_file():
            with path.open("rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
        digest.update(b"\0")
    for name, contents in sorted(extra.items()):
        digest.update(f"{name}\0{contents}\0".encode())
    return digest.hexdigest()


def extra_files(settings: Settings, folder: Path) -> dict[str, str]:
    """What the build adds to the folder's context (by name): the CA bundle this machine trusts, where the
    project has the `ca-certificates/` folder `emulate init-image` writes."""
    if not (folder / CA_FOLDER).is_dir():
        return {}
    from emulator.host.images import extra_ca

    ca = extra_ca(settings)
    return {CA_IN_CONTEXT: ca.decode("utf-8", errors="replace")} if ca else {}


def _check_folder(folder: Path, dockerfile: str) -> None:
    if not folder.is_dir():
        raise ConfigError(f"{folder} is not a folder: give the folder that holds the image's Dockerfile")
    if not (folder / dockerfile).is_file():
        raise ConfigError(f"{folder} has no {dockerfile}: give the folder that holds the image's Dockerfile")


def current_image(client: docker.DockerClient, tag: str, digest: str) -> str | None:
    """The id of the image under `tag` when it was built from the context with this digest, else None."""
    try:
        image = client.images.get(tag)
    except docker.errors.ImageNotFound:
        return None
    return str(image.id) if (image.labels or {}).get(labels.CONTEXT_DIGEST) == digest else None


def build_folder(
    settings: Settings,
    folder: Path,
    tag: str,
    say: Callable[[str], None] = lambda line: None,
    client: docker.DockerClient | None = None,
    *,
    dockerfile: str = "Dockerfile",
    reuse: bool = True,
) -> Built:
    """Build `folder` into `tag` (the engine's layer cache used); with `reuse`, not at all when `tag` already holds
    an image of exactly this context. `say` hears each step; a failed build raises BuildFailed, and the image
    `tag` named before is left as it was."""
    started = time.monotonic()
    folder = folder.resolve()
    _check_folder(folder, dockerfile)
    extra = extra_files(settings, folder)
    files = context_files(folder, dockerfile)
    digest = context_digest(folder, files, extra)
    with docker_errors():
        client = client or connect()
        if reuse and (same := current_image(client, tag, digest)) is not None:
            return Built(tag, same, digest, False, time.monotonic() - started)
        with tempfile.TemporaryFile() as context:
            create_archive(root=str(folder), files=files, fileobj=context, extra_files=list(extra.items()))
            context.seek(0)
            image_id = _run_build(client, context, tag, dockerfile, digest, say)
    return Built(tag, image_id, digest, True, time.monotonic() - started)


def _run_build(
    client: docker.DockerClient,
    context: object,
    tag: str,
    dockerfile: str,
    digest: str,
    say: Callable[[str], None],
) -> str:
    stream = client.api.build(
        fileobj=context,
        custom_context=True,
        tag=tag,
        dockerfile=dockerfile,
        rm=True,
        forcerm=True,
        decode=True,
        labels={labels.CONTEXT_DIGEST: digest},
    )
    step: list[str] = []  # the step under way and its output: what a failure is told with
    for chunk in stream:
        if "error" in chunk:
            raise BuildFailed(f"building {tag} failed: {chunk['error'].strip()}" + _failed_step(step))
        for line in _ANSI.sub("", chunk.get("stream") or "").rstrip().splitlines():
            if not line.strip():
                continue
            if STEP.match(line):
                step = []
            step.append(line)
            say(line)
    return str(client.images.get(tag).id)


def _failed_step(lines: list[str]) -> str:
    """The failed step and its last lines of output, without the builder's own bookkeeping."""
    told = [line for line in lines if not _BOOKKEEPING.match(line)]
    if len(told) > ERROR_LINES:
        told = [told[0], "  ...", *told[-(ERROR_LINES - 1) :]]
    return "".join(f"\n  {line}" for line in told)
