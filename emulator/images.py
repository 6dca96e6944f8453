"""Build the emulator's images from images/ (and the service's from the top-level Dockerfile).

When no registry can be reached, debian:bookworm-slim is made locally with
debootstrap (images/base/bootstrap.sh) and every recipe builds from it unchanged.
An optional extra CA bundle (EMULATE_EXTRA_CA_BUNDLE) is baked into the base so
apt, pip and curl trust a corporate TLS proxy during builds and in sessions.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import tarfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import docker
import docker.errors

from emulator import __version__
from emulator.errors import ConfigError, EmulatorError, Unavailable
from emulator.runtime.docker import connect, docker_errors
from emulator.settings import REPO_ROOT, Settings

DEBIAN_BASE = "debian:bookworm-slim"
BASE_IMAGE = "skaha-emulator/base:bookworm"
SERVICE_IMAGE = "skaha-emulator/service:latest"
GATEWAY_IMAGE = "skaha-emulator/gateway:latest"
RECIPE_LABEL = "io.skaha-emulator.recipe"


@dataclass(frozen=True)
class Recipe:
    name: str
    tag: str
    context: Path
    files: tuple[str, ...] = ()  # for the service: what of the repo goes into the context
    needs: tuple[str, ...] = ("base",)
    external: str = ""  # why it needs registries beyond Debian's, PyPI and npm (then built only when named)


def recipes(settings: Settings) -> dict[str, Recipe]:
    images = settings.images_dir
    found = {
        "base": Recipe("base", BASE_IMAGE, images / "base", needs=()),
        "gateway": Recipe("gateway", GATEWAY_IMAGE, images / "gateway"),
        "service": Recipe(
            "service",
            SERVICE_IMAGE,
            REPO_ROOT,
            files=("Dockerfile", "pyproject.toml", "README.md", "emulator", "profiles"),
        ),
    }
    for folder in sorted(images.iterdir()):
        if (folder / "Dockerfile").exists() and folder.name not in found:
            marker = folder / "EXTERNAL"
            external = marker.read_text().strip() if marker.exists() else ""
            needs = () if external else ("base",)
            found[folder.name] = Recipe(
                folder.name, f"skaha-emulator/{folder.name}:latest", folder, needs=needs, external=external
            )
    return found


def default_recipes(settings: Settings) -> list[str]:
    """What `emulate images build` builds when no name is given: every recipe buildable offline."""
    return [name for name, recipe in recipes(settings).items() if not recipe.external]


def _context(recipe: Recipe, extra_ca: bytes) -> io.BytesIO:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        if recipe.files:
            for name in recipe.files:
                archive.add(
                    recipe.context / name,
                    arcname=name,
                    filter=lambda info: None if "__pycache__" in info.name else info,
                )
        else:
            archive.add(recipe.context, arcname=".")
        if recipe.name == "base":
            info = tarfile.TarInfo("extra-ca.crt")
            info.size = len(extra_ca)
            archive.addfile(info, io.BytesIO(extra_ca))
    buffer.seek(0)
    return buffer


def _extra_ca(settings: Settings) -> bytes:
    path = settings.extra_ca_bundle
    if path is None:
        return b""
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"extra CA bundle {path} cannot be read: {exc}") from exc


def ensure_debian_base(client: docker.DockerClient, say: Callable[[str], None]) -> None:
    """debian:bookworm-slim from a registry, or made offline with debootstrap."""
    try:
        client.images.get(DEBIAN_BASE)
        return
    except docker.errors.ImageNotFound:
        pass
    say(f"pulling {DEBIAN_BASE}")
    try:
        client.images.pull(DEBIAN_BASE)
        return
    except docker.errors.APIError:
        say("no registry reachable; making the base offline with debootstrap (about 30 s)")
    if shutil.which("debootstrap") is None:
        raise Unavailable(
            "no registry is reachable and debootstrap is not installed: "
            "install it (apt-get install debootstrap) or load debian:bookworm-slim with docker load"
        )
    if os.geteuid() != 0:
        raise Unavailable("making the base image offline needs root (debootstrap); run this build with sudo")
    script = REPO_ROOT / "images" / "base" / "bootstrap.sh"
    result = subprocess.run(["sh", str(script)], capture_output=True, text=True)
    if result.returncode != 0:
        tail = "\n".join(result.stderr.strip().splitlines()[-5:])
        raise EmulatorError(f"debootstrap of the base image failed:\n{tail}")


def build(
    settings: Settings,
    names: Iterable[str],
    say: Callable[[str], None],
    client: docker.DockerClient | None = None,
) -> list[str]:
    """Build the named recipes (and what they need, if missing); returns the tags built."""
    with docker_errors():
        return _build(settings, names, say, client or connect())


def _build(
    settings: Settings, names: Iterable[str], say: Callable[[str], None], client: docker.DockerClient
) -> list[str]:
    known = recipes(settings)
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ConfigError(f"no image recipe named {', '.join(unknown)} (known: {', '.join(known)})")
    order: list[str] = []

    def visit(name: str) -> None:
        for need in known[name].needs:
            if need not in order and not _present(client, known[need].tag):
                visit(need)
        if name not in order:
            order.append(name)

    for name in names:
        visit(name)
    ca = _extra_ca(settings)
    built = []
    for name in order:
        recipe = known[name]
        if name == "base":
            ensure_debian_base(client, say)
        say(f"building {recipe.tag}")
        _build_one(client, recipe, ca, say)
        built.append(recipe.tag)
    # Rebuilt recipes leave their previous images untagged; drop those nothing uses any more.
    client.images.prune(filters={"dangling": True, "label": RECIPE_LABEL})
    return built


def _present(client: docker.DockerClient, tag: str) -> bool:
    try:
        client.images.get(tag)
        return True
    except docker.errors.ImageNotFound:
        return False


def _build_one(client: docker.DockerClient, recipe: Recipe, ca: bytes, say: Callable[[str], None]) -> None:
    stream = client.api.build(
        fileobj=_context(recipe, ca),
        custom_context=True,
        tag=recipe.tag,
        rm=True,
        forcerm=True,
        decode=True,
        labels={RECIPE_LABEL: recipe.name, "io.skaha-emulator.version": __version__},
    )
    tail: list[str] = []
    for chunk in stream:
        if "error" in chunk:
            detail = "\n".join(tail[-8:])
            raise EmulatorError(f"building {recipe.tag} failed: {chunk['error'].strip()}\n{detail}")
        line = (chunk.get("stream") or "").rstrip()
        if line:
            tail.append(line)
            if line.startswith("Step "):
                say(f"{recipe.name}: {line}")


def missing(settings: Settings, names: Iterable[str], client: docker.DockerClient) -> list[str]:
    known = recipes(settings)
    with docker_errors():
        return [n for n in names if not _present(client, known[n].tag)]
