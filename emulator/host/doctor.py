"""`emulate doctor`: what this machine will and will not do for the emulator, each finding with its fix.

The checks are pure functions of what was read (the unit tests feed them recorded engine answers of
rootful Docker, rootless Docker and rootless Podman); the readers that touch the machine (the engine,
/proc, a port, the disk, the package indexes) stand apart, and the slow ones run side by side, each
bounded to a few seconds, so the whole run takes about as long as its slowest network answer.
"""

from __future__ import annotations

import errno
import os
import shutil
import socket
import ssl
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from emulator.errors import EmulatorError
from emulator.runtime.engine import EngineFacts, engine_facts, version_numbers
from emulator.settings import Settings

if TYPE_CHECKING:
    from docker import DockerClient

OK, WARN, FAIL = "ok", "warn", "fail"
NETWORK_TIMEOUT = 5.0  # seconds for each network answer (the engine's, each package index's)
DISK_WARN_BYTES = 10 << 30
DISK_FAIL_BYTES = 1 << 30
# Where image builds fetch from: pip from PyPI, apt from Debian's mirror (both over HTTPS here).
PACKAGE_INDEXES = ("https://pypi.org/simple/pip/", "https://deb.debian.org/debian/dists/bookworm/InRelease")


@dataclass(frozen=True)
class Finding:
    check: str
    status: str  # OK | WARN | FAIL
    detail: str
    fix: str = ""


def launch_will_work(findings: Iterable[Finding]) -> bool:
    """Warnings leave a working platform; any failure means `up` or a launch will not work as promised."""
    return all(f.status != FAIL for f in findings)


# --- the checks (pure) -------------------------------------------------------------------------------------


def engine_check(facts: EngineFacts | None, where: str, error: str) -> Finding:
    if facts is None:
        if "permission denied" in error.lower():
            fix = (
                "let your user reach the engine: sudo usermod -aG docker $USER, then log in again "
                "(or use a rootless engine and point DOCKER_HOST at its socket)"
            )
        else:
            fix = (
                "start the engine (sudo systemctl start docker; Podman: systemctl --user start podman.socket), "
                "or point DOCKER_HOST at its socket, e.g. unix://$XDG_RUNTIME_DIR/podman/podman.sock"
            )
        return Finding("engine", FAIL, f"no container engine answers at {where}: {error}", fix)
    mode = "" if facts.rootless else ", rootful"  # a rootless engine's description says so already
    detail = f"{facts.description}{mode}, API {facts.api_version}, at {where}"
    if version_numbers(facts.api_version) < (1, 41):
        return Finding(
            "engine", WARN, f"{detail}: older than API 1.41, so session figures stay unknown", "use Docker 20.10+"
        )
    return Finding("engine", OK, detail)


def socket_check(facts: EngineFacts | None, socket_path: str | None, error: str) -> Finding:
    """The engine socket the service container will mount (it launches the sessions through it)."""
    if socket_path is None:
        return Finding("service socket", FAIL, error or "unknown: no engine answers", "see the engine line")
    if facts is not None and facts.desktop:
        return Finding("service socket", OK, f"{socket_path} (Docker Desktop's own, inside its VM)")
    if not Path(socket_path).exists():
        return Finding(
            "service socket",
            FAIL,
            f"{socket_path}, which the service would mount, does not exist on this machine",
            "point DOCKER_HOST at the engine's local socket (unix:///path/to/docker.sock)",
        )
    return Finding("service socket", OK, f"the service will mount {socket_path}")


def limits_check(facts: EngineFacts | None) -> Finding:
    """Which of the contract's limits will hold: a failure, since a session told 4G would get the machine."""
    if facts is None:
        return Finding("limits", WARN, "unknown: no engine answers", "see the engine line")
    driver = f", driver {facts.cgroup_driver}" if facts.cgroup_driver else ""
    cgroups = (f"cgroup v{facts.cgroup_version}" if facts.cgroup_version else "cgroups") + driver
    limits = facts.limits
    if limits.all:
        return Finding("limits", OK, f"{cgroups}: memory, CPU and pids limits hold")
    return Finding(
        "limits",
        FAIL,
        f"{cgroups}, {'rootless' if facts.rootless else 'rootful'}: {limits.named} limits will NOT be enforced "
        "(sessions launch, but one told 4G may use the whole machine)",
        limits.why_not,
    )


def userns_check(values: Mapping[str, str | None], rootless: bool | None) -> Finding:
    """User namespaces, which rootless engines need. `values`: the sysctl files' contents (None: absent);
    `rootless`: the engine that answers is rootless (None: no engine answers)."""
    problems = []
    if values.get("user.max_user_namespaces") == "0":
        problems.append(("user.max_user_namespaces is 0", "sudo sysctl -w user.max_user_namespaces=28633"))
    if values.get("kernel.unprivileged_userns_clone") == "0":
        problems.append(("kernel.unprivileged_userns_clone is 0", "sudo sysctl -w kernel.unprivileged_userns_clone=1"))
    if values.get("kernel.apparmor_restrict_unprivileged_userns") == "1":
        problems.append(
            (
                "AppArmor restricts unprivileged user namespaces",
                "give rootlesskit or podman an AppArmor profile that allows userns "
                "(or sudo sysctl -w kernel.apparmor_restrict_unprivileged_userns=0)",
            )
        )
    if rootless:
        return Finding("user namespaces", OK, "in use by the rootless engine")
    if not problems:
        limit = values.get("user.max_user_namespaces")
        return Finding(
            "user namespaces", OK, f"available{f' (up to {limit})' if limit else ''}: rootless engines can run"
        )
    fix = "; ".join(f for _, f in problems) + " (and the same in /etc/sysctl.d/ to keep it)"
    detail = "; ".join(p for p, _ in problems) + ": a rootless engine cannot run here (a rootful one is fine)"
    return Finding("user namespaces", WARN, detail, fix)


def port_check(host: str, port: int, bind_error: int | None, ours: bool) -> Finding:
    """`bind_error`: the errno binding the address gave (None: it is free); `ours`: this instance's gateway
    already publishes it (up already)."""
    where = f"{host}:{port}"
    if bind_error is None:
        return Finding("port", OK, f"{where} is free")
    if ours:
        return Finding("port", OK, f"{where} is this instance's own gateway (it is up)")
    if bind_error == errno.EACCES:
        return Finding(
            "port",
            FAIL,
            f"{where}: a port below 1024 needs root",
            f"use a port from 1024 up: emulate up --port {8080 if port != 8080 else 18080}",
        )
    if bind_error == errno.EADDRNOTAVAIL:
        return Finding("port", FAIL, f"{where}: this machine has no address {host}", "emulate up --host 127.0.0.1")
    return Finding(
        "port",
        FAIL,
        f"{where} is taken by another program",
        f"stop it (sudo ss -ltnp 'sport = :{port}' names it), or use another port: emulate up --port "
        f"{port + 10000 if port < 55535 else 18080} (make up EMULATE_PORT=...)",
    )


def arc_owner_check(facts: EngineFacts | None) -> Finding | None:
    """Whose files sessions write under /arc are on the host (None: nothing to say)."""
    if facts is None or not facts.arc_owner_advice:
        return None
    return Finding(
        "/arc ownership", WARN, "files sessions write under /arc are not yours on the host", facts.arc_owner_advice
    )


def faults_check(faults: bool) -> Finding | None:
    """Whether launches may ask for faults (None: they may not, as by default)."""
    if not faults:
        return None
    return Finding(
        "faults",
        WARN,
        "EMULATE_FAULTS=true: any launch may ask for its session to stay Pending, fail its pull, be OOM-killed "
        "or end early (fault=..., or the env entry EMULATE_FAULT=...)",
        "for testing clients only: unset EMULATE_FAULTS (then `emulate up`) where people rely on the platform",
    )


def disk_check(folder: Path, free_bytes: int) -> Finding:
    free = f"{free_bytes / 2**30:.1f} GiB free under {folder}"
    fix = "free some space on that disk, or keep /arc on a larger one: EMULATE_ARC_DIR=/larger/disk/arc"
    if free_bytes < DISK_FAIL_BYTES:
        return Finding("disk", FAIL, f"only {free}: sessions cannot write their files", fix)
    if free_bytes < DISK_WARN_BYTES:
        return Finding("disk", WARN, f"only {free} (a workshop's data wants 10 GiB or more)", fix)
    return Finding("disk", OK, free)


def index_check(answers: Mapping[str, str | None], ca: str, offline: bool) -> Finding:
    """`answers`: each package index's URL and its error (None: it answered); `ca`: what the builds trust;
    `offline`: a bundle brings the images, so builds need no index."""
    failed = {url: error for url, error in answers.items() if error}
    if not failed:
        return Finding("package indexes", OK, f"PyPI and Debian's mirror answer over HTTPS, verified with {ca}")
    detail = "; ".join(f"{url}: {error}" for url, error in failed.items()) + f" (trusting {ca})"
    if any("certificate" in error.lower() or "ssl" in error.lower() for error in failed.values()):
        fix = (
            "behind a TLS-inspecting proxy, point EMULATE_EXTRA_CA_BUNDLE at a PEM bundle holding its CA "
            "(or set pip's `cert` in pip.conf): image builds trust only what is named there"
        )
    else:
        fix = "reach the Internet (set HTTPS_PROXY behind a proxy), or set up offline: make up BUNDLE=workshop.bundle"
    if offline:
        return Finding("package indexes", WARN, detail + ": fine offline, from the bundle", fix)
    return Finding("package indexes", FAIL, detail + ": image builds will fail", fix)


def selinux_check(enforce: str | None, engine_labels: bool, mode: str) -> Finding:
    """`enforce`: /sys/fs/selinux/enforce's content (None: no SELinux); `engine_labels`: the engine labels
    containers; `mode`: EMULATE_SELINUX (auto, relabel, disable, off)."""
    if enforce is None:
        return Finding("SELinux", OK, "not present")
    if enforce.strip() != "1":
        return Finding("SELinux", OK, "permissive: it denies nothing")
    if mode == "relabel" or (mode == "auto" and engine_labels):
        return Finding("SELinux", OK, "enforcing: the sessions' bind mounts are relabelled (:z)")
    if mode == "disable":
        return Finding("SELinux", OK, "enforcing: sessions run with label=disable")
    if not engine_labels:
        return Finding("SELinux", OK, "enforcing, but the engine does not label containers: nothing is denied")
    return Finding(
        "SELinux",
        WARN,
        "enforcing, the engine labels containers and EMULATE_SELINUX=off: sessions' bind mounts of /arc are denied",
        "unset EMULATE_SELINUX (auto relabels them), or set it to relabel",
    )


def gpu_check(gpus: list[str], absent_because: str, refusal: str, runtimes: Iterable[str]) -> Finding:
    """`gpus`: the GPUs NVML names; `refusal`: why the engine cannot hand them to sessions, as the service
    decides it ("": it can); `runtimes`: the engine's."""
    if not gpus:
        return Finding("GPU", OK, f"{absent_because}: GPU sessions are not offered")
    found = f"{len(gpus)} GPU(s): {', '.join(sorted(set(gpus)))}"
    if not refusal:
        way = "the nvidia runtime" if "nvidia" in runtimes else "CDI"
        return Finding("GPU", OK, f"{found}, handed to sessions through {way}")
    return Finding(
        "GPU",
        WARN,
        f"{found}, but sessions cannot have them: {refusal}",
        "install the NVIDIA Container Toolkit, then `sudo nvidia-ctk runtime configure` and restart the engine "
        "(Podman 5.4+, Docker 25+ with CDI: `sudo nvidia-ctk cdi generate --output=/etc/cdi/nvidia.yaml`)",
    )


def images_check(wanted: Mapping[str, str], present: set[str] | None, bundle: Path | None) -> Finding:
    """`wanted`: each image and what wants it (a session type, the platform); `present`: those here (None:
    no engine answers); `bundle`: the workshop bundle that names them (None: the profiles' default images)."""
    if present is None:
        return Finding("images", FAIL if bundle else WARN, "unknown: no engine answers", "see the engine line")
    missing = [name for name in wanted if name not in present]
    source = f"the bundle {bundle}" if bundle else "the profiles and the platform"
    if not missing:
        return Finding("images", OK, f"all {len(wanted)} images {source} names are here")
    absent = ", ".join(f"{name} ({wanted[name]})" for name in missing)
    if bundle is not None:
        return Finding("images", FAIL, f"not here: {absent}", f"emulate bundle load {bundle}")
    return Finding(
        "images",
        WARN,
        f"not here: {absent}",
        "`emulate up` builds the platform's; a launch pulls a session's image where its registry answers "
        "(or build it: emulate images build NAME)",
    )


# --- the readers (they touch the machine) ------------------------------------------------------------------


def engine_address(client: DockerClient | None) -> str:
    """Where the client went: the socket it reached, else what names the engine (DOCKER_HOST, a rootless
    engine's socket, the Docker CLI's context), as every command finds it."""
    from emulator.runtime import endpoint

    if client is not None and (path := endpoint.client_socket(client)):
        return f"unix://{path}"
    named = os.environ.get("DOCKER_HOST") or endpoint.discovered_url()
    if named:
        return named
    try:
        from docker.context import ContextAPI

        context = ContextAPI.get_current_context()
        return str(context.Host) + ("" if context.name == "default" else f" (context {context.name})")
    except Exception:  # a broken context file: docker-py said so when it connected
        return f"unix://{endpoint.DEFAULT_SOCKET}"


def read_engine() -> tuple[DockerClient | None, EngineFacts | None, str]:
    from emulator.runtime.endpoint import client_from_environment

    try:
        client = client_from_environment(timeout=int(NETWORK_TIMEOUT))
        client.ping()
        return client, engine_facts(client), ""
    except Exception as exc:  # DockerException, or requests' own: either way, no engine answers
        return None, None, _one_line(exc)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip() or exc.__class__.__name__
    # docker-py wraps the socket's own error in requests' words: say what people can act on.
    for causes, meaning in (
        (("FileNotFoundError", "No such file or directory"), "no such socket"),
        (("ConnectionRefusedError", "Connection refused"), "nothing listens there (connection refused)"),
        (("PermissionError", "Permission denied"), "permission denied on the socket"),
    ):
        if any(cause in text for cause in causes):
            return meaning
    return text.splitlines()[0][:300]


def read_service_socket(client: DockerClient | None, facts: EngineFacts | None) -> tuple[str | None, str]:
    """The socket path the service container will mount, as `emulate up` derives it, or why none."""
    if client is None or facts is None:
        return None, ""
    from emulator.runtime.endpoint import service_socket

    try:
        return service_socket(client, facts), ""
    except EmulatorError as exc:
        return None, exc.message


def read_sysctls(root: Path = Path("/proc/sys")) -> dict[str, str | None]:
    names = (
        "user.max_user_namespaces",
        "kernel.unprivileged_userns_clone",
        "kernel.apparmor_restrict_unprivileged_userns",
    )
    return {name: _read(root / name.replace(".", "/")) for name in names}


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def try_bind(host: str, port: int) -> int | None:
    """The errno binding host:port gives (None: it is free). SO_REUSEADDR, as servers set it: a port
    in TIME_WAIT is free to them."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            return exc.errno or errno.EADDRINUSE
    return None


def gateway_publishes(client: DockerClient | None, settings: Settings) -> bool:
    """Whether this instance's running gateway holds the port (then a taken port is fine)."""
    if client is None:
        return False
    from emulator import naming

    try:
        gateway = client.containers.get(naming.gateway_container(settings.prefix))
    except Exception:  # not there (or the engine went away): not ours
        return False
    bindings = (gateway.attrs.get("HostConfig") or {}).get("PortBindings") or {}
    ports = {b.get("HostPort") for found in bindings.values() for b in found or []}
    return gateway.status == "running" and str(settings.port) in ports


def free_bytes_under(folder: Path) -> int:
    """Free space on the disk that will hold the folder (its nearest existing parent, before `up` makes it)."""
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    return shutil.disk_usage(existing).free


def build_ca(settings: Settings) -> tuple[str, bytes | None]:
    """What image builds trust beyond the image's own public roots, as the build finds it: a description
    and the certificates (None: the public roots alone, which certifi's list stands for here)."""
    from emulator.host.images import ca_sources, extra_ca

    try:
        sources = ca_sources(settings)
        certificates = extra_ca(settings)
    except EmulatorError as exc:
        return f"an unreadable CA ({exc.message})", b""
    if not sources:
        return "the public roots only (no CA bundle, system store or pip cert found)", None
    return " + ".join(f"{source.path} ({source.origin})" for source in sources), certificates


def tls_context(certificates: bytes | None) -> ssl.SSLContext:
    """Trust what builds trust: the image's own public roots (certifi's list stands for Debian's) and what
    builds add to them (a proxy's CA would be among it)."""
    import certifi

    context = ssl.create_default_context(cafile=certifi.where())  # verifies the chain and the host name
    if certificates is None:
        return context
    if b"-----BEGIN CERTIFICATE-----" not in certificates:  # a named bundle that holds nothing: said, not ignored
        raise ValueError("no PEM certificate in it")
    context.load_verify_locations(cadata=certificates.decode("ascii", errors="replace"))
    return context


def probe_index(url: str, certificates: bytes | None, timeout: float = NETWORK_TIMEOUT) -> str | None:
    """None when the index answers over verified HTTPS, else why not (one line)."""
    import httpx

    try:
        context = tls_context(certificates)
    except (ssl.SSLError, ValueError) as exc:
        return f"the CA bundle holds no usable certificate ({_one_line(exc)})"
    try:
        response = httpx.head(url, verify=context, timeout=timeout, follow_redirects=True)
    except httpx.TimeoutException:
        return f"no answer within {timeout:.0f} s"
    except httpx.HTTPError as exc:
        return _one_line(exc)
    if response.status_code >= 400:
        return f"answered {response.status_code}"
    return None


def read_gpus(facts: EngineFacts | None) -> tuple[list[str], str, str]:
    """The GPUs NVML names, why there are none, and why sessions cannot have them ("": they can), decided as
    the service decides it (the engine's NVIDIA runtime, or CDI specs read as the engine reads them)."""
    from emulator.runtime.docker import gpu_refusal
    from emulator.runtime.gpus import DEFAULT_CDI_DIRS, Nvml, cdi_device_names, cdi_names

    nvml = Nvml()
    try:
        gpus = nvml.open()
    finally:
        nvml.close()
    if not gpus or facts is None:
        return [gpu.name for gpu in gpus], nvml.absent_because, "" if not gpus else "no engine answers"
    names = cdi_device_names(facts.cdi_spec_dirs or DEFAULT_CDI_DIRS)
    return [gpu.name for gpu in gpus], nvml.absent_because, gpu_refusal(gpus, facts, cdi_names(gpus, names))


def wanted_images(settings: Settings, bundle: Path | None) -> dict[str, str]:
    """Each image a launch will need, with what wants it: the bundle's, else the profiles' defaults and the
    platform's own."""
    if bundle is not None:
        from emulator.bundle.archive import read_manifest

        return {entry["name"]: "in the bundle" for entry in read_manifest(bundle).images}
    from emulator.host.images import GATEWAY_IMAGE
    from emulator.profiles import load_profiles

    wanted = {settings.service_image: "the platform", GATEWAY_IMAGE: "the platform"}
    for profile in load_profiles(settings.profiles_dir).values():
        wanted.setdefault(profile.default_image, profile.type)
    return wanted


def present_images(client: DockerClient | None, names: Iterable[str]) -> set[str] | None:
    if client is None:
        return None
    import docker.errors

    found = set()
    for name in names:
        try:
            client.images.get(name)
            found.add(name)
        except docker.errors.APIError:  # not here (ImageNotFound), or not a reference this engine takes
            continue
    return found


# --- all of it ---------------------------------------------------------------------------------------------


def run_checks(settings: Settings, bundle: Path | None = None) -> list[Finding]:
    """Every check, in the order people read them. The package indexes are asked on threads of their own
    while the engine and the machine are read."""
    wanted = wanted_images(settings, bundle)  # a bad bundle is an error before anything else is asked
    ca, certificates = build_ca(settings)
    with ThreadPoolExecutor(max_workers=len(PACKAGE_INDEXES)) as pool:
        asked = {url: pool.submit(probe_index, url, certificates) for url in PACKAGE_INDEXES}
        client, facts, error = read_engine()
        path, error_of_socket = read_service_socket(client, facts)
        local = _local_findings(settings, client, facts)
        images = images_check(wanted, present_images(client, wanted), bundle)
        answers = {url: future.result() for url, future in asked.items()}
    return [
        engine_check(facts, engine_address(client), error),
        socket_check(facts, path, error_of_socket),
        limits_check(facts),
        *filter(None, [arc_owner_check(facts), faults_check(settings.faults)]),
        *local,
        index_check(answers, ca, offline=bundle is not None),
        images,
    ]


def _local_findings(settings: Settings, client: DockerClient | None, facts: EngineFacts | None) -> list[Finding]:
    gpus, absent_because, refusal = read_gpus(facts)
    return [
        userns_check(read_sysctls(), facts.rootless if facts else None),
        port_check(
            settings.host, settings.port, try_bind(settings.host, settings.port), gateway_publishes(client, settings)
        ),
        disk_check(settings.layout.arc_path, free_bytes_under(settings.layout.arc_path)),
        selinux_check(_read(Path("/sys/fs/selinux/enforce")), bool(facts and facts.selinux), settings.selinux),
        gpu_check(gpus, absent_because, refusal, facts.runtimes if facts else ()),
    ]


def as_documents(findings: Iterable[Finding]) -> list[dict[str, Any]]:
    return [{"check": f.check, "status": f.status, "detail": f.detail, "fix": f.fix} for f in findings]
