"""Build the emulator's images from images/ (and the service's from the top-level Dockerfile).

When no registry can be reached, debian:bookworm-slim is made locally with
debootstrap (images/base/bootstrap.sh) and every recipe builds from it unchanged.
An optional extra CA bundle (EMULATE_EXTRA_CA_BUNDLE) is baked into the base so
apt, pip and curl trust a corporate TLS proxy during builds and in sessions.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import tarfile
from collections.abc import Callable, Iterable, Mapping
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
_OWN_FROM = re.compile(r"^\s*FROM\s+(?:--\S+\s+)*skaha-emulator/([a-z0-9._-]+):", re.IGNORECASE | re.MULTILINE)


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
            files=("Dockerfile", "pyproject.toml", "README.md", "emulator", "profiles", "images"),
        ),
    }
    for folder in sorted(images.iterdir()):
        if (folder / "Dockerfile").exists() and folder.name not in found:
            marker = folder / "EXTERNAL"
            external = marker.read_text().strip() if marker.exists() else ""
            # What its FROM lines name of our own images (the base unless it says otherwise).
            own = tuple(dict.fromkeys(_OWN_FROM.findall((folder / "Dockerfile").read_text())))
            needs = () if external else own or ("base",)
            found[folder.name] = Recipe(
                folder.name, f"skaha-emulator/{folder.name}:latest", folder, needs=needs, external=external
            )
    return found


def default_recipes(settings: Settings) -> list[str]:
    """What `emulate images build` builds when no name is given: every recipe buildable offline."""
    return [name for name, recipe in recipes(settings).items() if not recipe.external]


def build_context(recipe: Recipe, ca: bytes) -> io.BytesIO:
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
            info.size = len(ca)
            archive.addfile(info, io.BytesIO(ca))
    buffer.seek(0)
    return buffer


# Where the host's own tools are told to trust a TLS-inspecting proxy, in the order builds look.
CA_VARIABLES = ("PIP_CERT", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE")


def extra_ca_source(settings: Settings, environ: Mapping[str, str] = os.environ) -> tuple[str, Path] | None:
    """The CA bundle builds trust and where it was named: EMULATE_EXTRA_CA_BUNDLE, else the first of
    the host's PIP_CERT, REQUESTS_CA_BUNDLE and SSL_CERT_FILE that is set (so a machine already set up
    for its proxy needs nothing more)."""
    if settings.extra_ca_bundle is not None:
        return "EMULATE_EXTRA_CA_BUNDLE", settings.extra_ca_bundle  # named for us: a missing file is an error
    for variable in CA_VARIABLES:
        # Named for other tools: one that points nowhere (a stale shell setting) is passed over.
        if environ.get(variable) and Path(environ[variable]).is_file():
            return variable, Path(environ[variable])
    return None


def extra_ca(settings: Settings, environ: Mapping[str, str] = os.environ) -> bytes:
    source = extra_ca_source(settings, environ)
    if source is None:
        return b""
    variable, path = source
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"the CA bundle {path} ({variable}) cannot be read: {exc}") from exc


def ensure_debian_base(client: docker.DockerClient, say: Callable[[str], None], script: Path) -> None:
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
    names = list(names)
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ConfigError(f"no image recipe named {', '.join(unknown)} (known: {', '.join(known)})")
    order: list[str] = []
    wanted = set(names)

    def visit(name: str) -> None:
        # A need is built first when it is missing, or when it is itself being built (not after).
        for need in (n for n in known[name].needs if n in known):  # a FROM of no recipe of ours: Docker says
            if need not in order and (need in wanted or not _present(client, known[need].tag)):
                visit(need)
        if name not in order:
            order.append(name)

    for name in names:
        visit(name)
    ca = extra_ca(settings)
    source = extra_ca_source(settings)
    if source is not None and any(known[name].name == "base" for name in order):
        say(f"trusting the CA bundle {source[1]} ({source[0]}) in image builds")
    built = []
    for name in order:
        recipe = known[name]
        if name == "base":
            ensure_debian_base(client, say, recipe.context / "bootstrap.sh")
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
        fileobj=build_context(recipe, ca),
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


def tag(source: str, target: str, client: docker.DockerClient | None = None) -> str:
    """Give a local image another name (`docker tag`), such as the CANFAR name a handout uses; returns its id."""
    from emulator.core.policy import validate_image  # the launch's own grammar check

    try:
        validate_image(target)
    except EmulatorError as exc:
        raise ConfigError(exc.message.replace("session image", "the new name")) from None
    if "@" in target:
        raise ConfigError(f"the new name '{target}' has a digest; a name given to an image has a tag at most")
    with docker_errors():
        client = client or connect()
        try:
            image = client.images.get(source)
        except docker.errors.ImageNotFound:
            raise ConfigError(f"no local image '{source}' (see `docker images` or `emulate images build`)") from None
        image.tag(*split_name(target))
        return str(image.id)


def split_name(name: str) -> tuple[str, str]:
    """An image name as Docker's tag call takes it: repository and tag (latest when none is given;
    the colon of a registry's port is not a tag's)."""
    repository, colon, version = name.rpartition(":")
    if not colon or "/" in version:
        return name, "latest"
    return repository, version
