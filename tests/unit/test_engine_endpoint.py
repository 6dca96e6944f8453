"""One engine, one truth: which engine the CLI reaches, which socket the service mounts, and what `up`, `serve`
and the image list do differently on Podman, rootless engines and Docker Desktop (recorded facts, no engine)."""

import dataclasses
import json
import socket
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from emulator.client.discovery import record_url, recorded_base_url, recorded_url
from emulator.errors import ConfigError, Unavailable
from emulator.host.images import _STEP, bootstrap_tool
from emulator.host.instance import security_options, serve_refusal
from emulator.runtime.docker import short_names
from emulator.runtime.endpoint import DESKTOP_SOCKET, client_socket, discovered_url, service_socket
from emulator.runtime.engine import PODMAN, EngineFacts
from emulator.settings import Settings

DOCKER = EngineFacts("docker", "20.10.24", "1.41", False, "1", "cgroupfs", "Debian GNU/Linux 12 (bookworm)", False)
ROOTLESS_PODMAN = dataclasses.replace(DOCKER, kind=PODMAN, version="4.3.1", rootless=True)
DESKTOP = dataclasses.replace(DOCKER, version="27.3.1", operating_system="Docker Desktop", cgroup_version="2")
SELINUX = dataclasses.replace(DOCKER, kind=PODMAN, operating_system="Fedora Linux 40", selinux=True)


def offline_client(url: str) -> docker.DockerClient:
    """A client of `url` that connects to nothing until asked (a pinned API version skips the version call)."""
    return docker.DockerClient(base_url=url, version="1.41")


@pytest.fixture
def no_docker_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A Docker CLI configuration of the test's own (no current context unless the test writes one)."""
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker-config"))
    return tmp_path / "docker-config"


@pytest.fixture
def runtime_dir(tmp_path: Path) -> Iterator[Path]:
    folder = tmp_path / "run"
    (folder / "podman").mkdir(parents=True)
    yield folder


def listen(path: Path) -> socket.socket:
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    return server


def test_with_nothing_named_and_no_default_socket_the_rootless_podman_socket_then_dockers_is_found(
    no_docker_config: Path, runtime_dir: Path, tmp_path: Path
) -> None:
    environ = {"XDG_RUNTIME_DIR": str(runtime_dir)}
    absent = str(tmp_path / "docker.sock")
    assert discovered_url(environ, absent) is None  # nothing there either: docker-py's own error, as today
    with listen(runtime_dir / "docker.sock"):
        assert discovered_url(environ, absent) == f"unix://{runtime_dir}/docker.sock"
        with listen(runtime_dir / "podman" / "podman.sock"):
            assert discovered_url(environ, absent) == f"unix://{runtime_dir}/podman/podman.sock"
            # Anything that names an engine, or a default socket that is there, leaves the choice to docker-py.
            assert discovered_url({**environ, "DOCKER_HOST": "unix:///elsewhere.sock"}, absent) is None
            assert discovered_url({**environ, "DOCKER_CONTEXT": "rootless"}, absent) is None
            (runtime_dir / "default.sock").touch()
            assert discovered_url(environ, str(runtime_dir / "default.sock")) is None
            no_docker_config.mkdir()
            (no_docker_config / "config.json").write_text(json.dumps({"currentContext": "colima"}))
            assert discovered_url(environ, absent) is None


def test_the_service_mounts_the_socket_the_client_reached() -> None:
    """A context's socket counts as much as DOCKER_HOST's: what the client's transport dials is the truth."""
    client = offline_client("unix:///run/user/1001/podman/podman.sock")
    assert client_socket(client) == "/run/user/1001/podman/podman.sock"
    assert service_socket(client, ROOTLESS_PODMAN) == "/run/user/1001/podman/podman.sock"


def test_docker_desktop_always_mounts_its_vm_socket() -> None:
    client = offline_client("unix:///Users/ada/.docker/run/docker.sock")  # a macOS path the VM cannot mount
    assert service_socket(client, DESKTOP) == DESKTOP_SOCKET == "/var/run/docker.sock"


def test_an_engine_over_tcp_cannot_be_given_to_the_service() -> None:
    client = offline_client("tcp://10.0.0.5:2375")
    assert client_socket(client) is None
    with pytest.raises(ConfigError, match=r"local unix socket.*http://10\.0\.0\.5:2375.*DOCKER_HOST"):
        service_socket(client, DOCKER)


def test_podman_restarts_the_platform_only_through_podman_restart_service() -> None:
    assert DOCKER.restart_policy == "unless-stopped" and DOCKER.restart_advice == ""
    assert ROOTLESS_PODMAN.restart_policy == "always"  # the one policy podman-restart.service starts
    assert "podman-restart.service" in ROOTLESS_PODMAN.restart_advice


def test_selinux_hosts_turn_labelling_off_for_the_platforms_own_containers() -> None:
    assert security_options(SELINUX) == ["label=disable"] == security_options(SELINUX, "relabel")
    assert security_options(SELINUX, "off") == [] and security_options(DOCKER) == []


def test_serve_is_refused_where_the_host_cannot_reach_the_platform_network() -> None:
    assert serve_refusal(DOCKER) is None
    refusal = serve_refusal(ROOTLESS_PODMAN)
    assert refusal is not None and "rootless" in refusal and "emulate up" in refusal
    assert "Docker Desktop" in (serve_refusal(DESKTOP) or "")


def test_podman_image_names_lose_localhost_and_builds_show_its_steps() -> None:
    assert short_names(["localhost/skaha-emulator/notebook:latest", "localhost:5000/x:1"]) == [
        "skaha-emulator/notebook:latest",
        "localhost:5000/x:1",  # a registry at localhost:5000 is part of the name
    ]
    assert _STEP.match("STEP 1/3: FROM skaha-emulator/base:bookworm")  # Podman (buildah)
    assert _STEP.match("Step 1/3 : FROM skaha-emulator/base:bookworm")  # Docker's legacy builder
    assert not _STEP.match(" ---> Running in 0123")


def test_the_offline_base_needs_root_only_without_mmdebstrap() -> None:
    def only(*tools: str) -> dict[str, str]:
        return {tool: f"/usr/bin/{tool}" for tool in tools}

    assert bootstrap_tool(only("mmdebstrap", "debootstrap").get, euid=1000) == "mmdebstrap"
    assert bootstrap_tool(only("debootstrap").get, euid=0) == "debootstrap"
    with pytest.raises(Unavailable, match="debootstrap needs root: install mmdebstrap"):
        bootstrap_tool(only("debootstrap").get, euid=1000)
    with pytest.raises(Unavailable, match="neither mmdebstrap nor debootstrap"):
        bootstrap_tool(only().get, euid=0)


def test_status_finds_the_url_up_announced(tmp_path: Path) -> None:
    """`up --port 18100` records where it put the instance; a later `status` (default settings) reads it."""
    started = Settings(state_dir=tmp_path, port=18100, instance="t2")
    record_url(started)
    later = Settings(state_dir=tmp_path, instance="t2")
    assert recorded_base_url(later.layout) == "http://127.0.0.1:18100"
    assert recorded_url(later.layout) == "http://127.0.0.1:18100"
    later.layout.instance_file.write_text(json.dumps({"url": "http://127.0.0.1:18200"}))  # written by an older `up`
    assert recorded_base_url(later.layout) == "http://127.0.0.1:18200"
