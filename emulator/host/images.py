"""Build the emulator's images from images/ (and the service's from the top-level Dockerfile).

When no registry can be reached, debian:bookworm-slim is made locally (mmdebstrap as any user, or
debootstrap as root: images/base/bootstrap.sh) and imported through the engine's API; every recipe builds
from it unchanged. The CAs the host trusts (ours, the host's tools', the system store, pip's) are baked
into the base so apt, pip and curl trust a corporate TLS proxy during builds and in sessions.
"""

from __future__ import annotations

import configparser
import hashlib
import io
import os
import re
import shutil
import ssl
import subprocess
import tarfile
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import docker
import docker.errors

from emulator import __version__, labels
from emulator.errors import ConfigError, EmulatorError, Unavailable
from emulator.host.builds import STEP
from emulator.runtime.docker import connect, docker_errors
from emulator.settings import REPO_ROOT, Settings

DEBIAN_BASE = "debian:bookworm-slim"
BASE_IMAGE = "skaha-emulator/base:bookworm"
GATEWAY_IMAGE = "skaha-emulator/gateway:latest"
_STEP = STEP  # build progress lines (host.builds' pattern: Docker's and Podman's)
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
            settings.service_image,
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
# The system store where OpenSSL's own file is missing: Debian/Ubuntu/Alpine, Fedora/RHEL, RHEL's
# extracted bundle, openSUSE, macOS and the BSDs.
SYSTEM_BUNDLES = (
    Path("/etc/ssl/certs/ca-certificates.crt"),
    Path("/etc/pki/tls/certs/ca-bundle.crt"),
    Path("/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem"),
    Path("/etc/ssl/ca-bundle.pem"),
    Path("/etc/ssl/cert.pem"),
)


@dataclass(frozen=True)
class CaSource:
    path: Path
    origin: str  # what named it: a variable, "the system store", "cert in FILE"


def named_ca(settings: Settings, environ: Mapping[str, str] = os.environ) -> CaSource | None:
    """A bundle named outright: EMULATE_EXTRA_CA_BUNDLE, else the first of the host's PIP_CERT,
    REQUESTS_CA_BUNDLE and SSL_CERT_FILE that is set (so a machine already set up for its proxy needs
    nothing more)."""
    if settings.extra_ca_bundle is not None:  # named for us: a missing file is an error
        return CaSource(settings.extra_ca_bundle, "EMULATE_EXTRA_CA_BUNDLE")
    for variable in CA_VARIABLES:
        # Named for other tools: one that points nowhere (a stale shell setting) is passed over.
        if environ.get(variable) and Path(environ[variable]).is_file():
            return CaSource(Path(environ[variable]), variable)
    return None


def system_store(candidates: Sequence[Path] | None = None) -> CaSource | None:
    """The bundle the host's OpenSSL (and so curl, apt's https, Python) trusts: OpenSSL's own file when it
    has one, else the first of the distributions' usual paths."""
    if candidates is None:
        cafile = ssl.get_default_verify_paths().cafile
        candidates = ((Path(cafile),) if cafile else ()) + SYSTEM_BUNDLES
    found = next((path for path in candidates if path.is_file()), None)
    return None if found is None else CaSource(found.resolve(), "the system store")


def pip_config_files(environ: Mapping[str, str] = os.environ, etc: Path = Path("/etc")) -> list[Path]:
    """pip's configuration files on Linux and macOS, the one that wins first (as pip loads them: PIP_CONFIG_FILE,
    which when present hides the user's files, then the user's, the new over the legacy, then the machine's)."""
    home = Path(environ.get("HOME") or Path.home())
    named = environ.get("PIP_CONFIG_FILE")
    if named == os.devnull:
        return []  # pip's way of reading no configuration at all
    files = [Path(named)] if named else []
    if not (named and Path(named).exists()):
        config_home = Path(environ.get("XDG_CONFIG_HOME") or home / ".config")
        files += [config_home / "pip" / "pip.conf", home / "Library/Application Support/pip/pip.conf"]
        files.append(home / ".pip" / "pip.conf")
    xdg_dirs = [Path(d) for d in (environ.get("XDG_CONFIG_DIRS") or str(etc / "xdg")).split(os.pathsep) if d]
    files.append(etc / "pip.conf")
    files += [folder / "pip" / "pip.conf" for folder in reversed(xdg_dirs)]  # pip: the first listed loads last
    return files


def pip_cert(environ: Mapping[str, str] = os.environ, etc: Path = Path("/etc")) -> CaSource | None:
    """The `cert` pip's configuration gives `pip install`: pip merges its files, then an [install] value
    anywhere beats a [global] one."""
    parsers = []
    for config_file in pip_config_files(environ, etc):
        parser = configparser.RawConfigParser()  # as pip reads them: no interpolation
        try:
            parser.read(config_file, encoding="utf-8")
        except (configparser.Error, UnicodeDecodeError):
            continue  # pip itself would stop at a broken file; the build then just trusts less
        parsers.append((config_file, parser))
    for section in ("install", "global"):
        for config_file, parser in parsers:
            value = parser.get(section, "cert", fallback="").strip()
            if value:  # the one pip uses: when it names no file, pip.conf gives nothing to trust
                path = Path(os.path.expandvars(os.path.expanduser(value)))
                return CaSource(path, f"cert in {config_file}") if path.is_file() else None
    return None


def ca_sources(
    settings: Settings,
    environ: Mapping[str, str] = os.environ,
    system: Sequence[Path] | None = None,
    etc: Path = Path("/etc"),
) -> list[CaSource]:
    """The bundles image builds trust, in order.

    A bundle named outright (ours, or a variable the host's tools read) is what those tools trust, alone: pip
    with PIP_CERT set ignores pip.conf. Otherwise the host's tools trust two stores at once: curl, apt and
    Python the system store, pip (which never reads the system store) its pip.conf `cert`. Either may be the
    only one holding a proxy's CA (a user who set pip up, an admin who set the machine up), so the build
    trusts both, concatenated; they are extra to the image's own Debian store, so more is never less.
    """
    named = named_ca(settings, environ)
    if named is not None:
        return [named]
    found = [source for source in (system_store(system), pip_cert(environ, etc)) if source is not None]
    unique: dict[Path, CaSource] = {}
    for source in found:  # pip.conf naming the system store: read once, both said
        same = unique.get(source.path.resolve())
        unique[source.path.resolve()] = (
            source if same is None else CaSource(same.path, f"{same.origin}, {source.origin}")
        )
    return list(unique.values())


def extra_ca(
    settings: Settings,
    environ: Mapping[str, str] = os.environ,
    system: Sequence[Path] | None = None,
    etc: Path = Path("/etc"),
) -> bytes:
    """The CA bundle baked into the base: every source's certificates, one after the other."""
    parts = []
    for source in ca_sources(settings, environ, system, etc):
        try:
            data = source.path.read_bytes()
        except OSError as exc:
            raise ConfigError(f"the CA bundle {source.path} ({source.origin}) cannot be read: {exc}") from exc
        parts.append(data if data.endswith(b"\n") or not data else data + b"\n")
    return b"".join(parts)


def describe_ca(sources: Sequence[CaSource]) -> str:
    """One line for the build's output: which CAs it trusts and why."""
    if not sources:
        return "trusting Debian's own CAs only in image builds (no CA bundle set, no system store, no pip cert)"
    named = " + ".join(f"{source.path} ({source.origin})" for source in sources)
    return f"trusting the CA bundle {named} in image builds"


def ensure_debian_base(client: docker.DockerClient, say: Callable[[str], None], script: Path) -> None:
    """debian:bookworm-slim from a registry, or made offline (`make_debian_base`)."""
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
        pass
    make_debian_base(client, say, script)


def bootstrap_tool(which: Callable[[str], str | None] = shutil.which, euid: int | None = None) -> str:
    """What makes the root filesystem offline: mmdebstrap as anyone (in a user namespace), debootstrap as root."""
    if which("mmdebstrap"):
        return "mmdebstrap"
    if which("debootstrap") is None:
        raise Unavailable(
            "no registry is reachable and neither mmdebstrap nor debootstrap is installed: install mmdebstrap "
            "(apt-get install mmdebstrap), or load debian:bookworm-slim from a bundle (`emulate bundle load`)"
        )
    if (os.geteuid() if euid is None else euid) != 0:
        raise Unavailable(
            "no registry is reachable and debootstrap needs root: install mmdebstrap (apt-get install mmdebstrap), "
            "which makes the base as you"
        )
    return "debootstrap"


def make_debian_base(client: docker.DockerClient, say: Callable[[str], None], script: Path) -> None:
    """A minimal bookworm from a Debian mirror (DEBIAN_MIRROR), imported through the engine's API as DEBIAN_BASE:
    no docker CLI, and no root with mmdebstrap (so a rootless engine, which `sudo` would not reach, gets it)."""
    tool = bootstrap_tool()
    say(f"no registry reachable; making {DEBIAN_BASE} offline with {tool} (about a minute)")
    with tempfile.TemporaryDirectory(prefix="skaha-emulator-rootfs-") as folder:
        tarball = Path(folder) / "rootfs.tar"
        result = subprocess.run(["sh", str(script), str(tarball)], capture_output=True, text=True)
        if result.returncode != 0:
            tail = "\n".join(result.stderr.strip().splitlines()[-5:])
            raise EmulatorError(f"{tool} of the base image failed:\n{tail}")
        repository, version = split_name(DEBIAN_BASE)
        # As the registry's image starts: bash when run with no command.
        client.api.import_image(src=str(tarball), repository=repository, tag=version, changes=['CMD ["bash"]'])


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
    ca = extra_ca(settings)
    ca_digest = hashlib.sha256(ca).hexdigest()[:16]

    def current(need: str) -> bool:
        # The base is out of date when it trusts other CAs than the host now does: what is built on it (the
        # service's pip install, say) would fail behind the proxy.
        found = _labels(client, known[need].tag)
        return found is not None and (need != "base" or found.get(labels.CA_DIGEST) == ca_digest)

    def visit(name: str) -> None:
        # A need is built first when it is missing, or when it is itself being built (not after).
        for need in (n for n in known[name].needs if n in known):  # a FROM of no recipe of ours: Docker says
            if need not in order and (need in wanted or not current(need)):
                visit(need)
        if name not in order:
            order.append(name)

    for name in names:
        visit(name)
    if "base" in order:
        say(describe_ca(ca_sources(settings)))
    built = []
    for name in order:
        recipe = known[name]
        if name == "base":
            ensure_debian_base(client, say, recipe.context / "bootstrap.sh")
        say(f"building {recipe.tag}")
        _build_one(client, recipe, ca, say, {labels.CA_DIGEST: ca_digest} if name == "base" else {})
        built.append(recipe.tag)
    # Rebuilt recipes leave their previous images untagged; drop those nothing uses any more.
    client.images.prune(filters={"dangling": True, "label": labels.RECIPE})
    return built


def _present(client: docker.DockerClient, tag: str) -> bool:
    return _labels(client, tag) is not None


def _labels(client: docker.DockerClient, tag: str) -> dict[str, str] | None:
    """The image's labels, or None when there is no such image."""
    try:
        return dict(client.images.get(tag).labels or {})
    except docker.errors.ImageNotFound:
        return None


def _build_one(
    client: docker.DockerClient, recipe: Recipe, ca: bytes, say: Callable[[str], None], extra: dict[str, str]
) -> None:
    stream = client.api.build(
        fileobj=build_context(recipe, ca),
        custom_context=True,
        tag=recipe.tag,
        rm=True,
        forcerm=True,
        decode=True,
        labels={labels.RECIPE: recipe.name, labels.VERSION: __version__, **extra},
    )
    tail: list[str] = []
    for chunk in stream:
        if "error" in chunk:
            detail = "\n".join(tail[-8:])
            raise EmulatorError(f"building {recipe.tag} failed: {chunk['error'].strip()}\n{detail}")
        line = (chunk.get("stream") or "").rstrip()
        if line:
            tail.append(line)
            if _STEP.match(line):
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
