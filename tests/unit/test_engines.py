"""The contract in each engine's terms, from the engines' own recorded answers (tests/unit/recorded_engines.py;
no engine needed). What this machine lacks (SELinux, CDI-capable engines, a GPU) is one of those answers with
the one field such a machine changes, said at each use.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import docker
import docker.errors
import pytest

from emulator.core.networks import UserNetworks
from emulator.errors import EngineRefused, ImagePullError, InvalidRequest, SubnetTaken, Unavailable
from emulator.runtime.docker import (
    DockerRuntime,
    create_container,
    create_kwargs,
    engine_tmpfs,
    host_config_extras,
)
from emulator.runtime.engine import version_numbers
from emulator.settings import Settings
from tests.factories import make_spec
from tests.unit.recorded_engines import (
    DOCKER,
    DOCKER_ROOTLESS,
    PODMAN,
    PODMAN_ROOTLESS,
    StubClient,
    answers,
    api_error,
    facts,
)

# --- what each engine is ------------------------------------------------------------------------------


def test_each_recorded_engine_is_told_apart() -> None:
    rootful, rootless = facts(DOCKER), facts(DOCKER_ROOTLESS)
    assert (rootful.kind, rootful.release[:2], rootful.rootless) == ("docker", (20, 10), False)
    assert (rootless.kind, rootless.rootless, rootless.cgroup_driver) == ("docker", True, "none")
    podman, podman_rootless = facts(PODMAN), facts(PODMAN_ROOTLESS)
    assert (podman.kind, podman.version, podman.rootless) == ("podman", "4.3.1", False)
    # Podman 4.3 says rootless only in its own top-level `Rootless`, not in SecurityOptions as Docker does.
    assert "name=rootless" not in answers(PODMAN_ROOTLESS)[1]["SecurityOptions"]
    assert podman_rootless.rootless
    # Rootless on cgroup v1: neither engine holds the limits (Podman drops them, Docker records them only).
    assert not rootless.limits.all and not podman_rootless.limits.all
    assert rootful.limits.all and podman.limits.all


def test_only_docker_reports_oom_kills() -> None:
    assert facts(DOCKER).reports_oom and facts(DOCKER_ROOTLESS).reports_oom
    assert not facts(PODMAN).reports_oom and not facts(PODMAN_ROOTLESS).reports_oom
    assert facts(PODMAN).memory_counts_cache and not facts(DOCKER).memory_counts_cache


@pytest.mark.parametrize(
    ("text", "numbers"), [("20.10.24+dfsg1", (20, 10, 24)), ("4.3.1", (4, 3, 1)), ("5.4.0-rc1", (5, 4, 0)), ("", ())]
)
def test_versions_compare_as_numbers(text: str, numbers: tuple[int, ...]) -> None:
    assert version_numbers(text) == numbers


# --- A: /scratch's owner ------------------------------------------------------------------------------


def test_scratch_is_the_users_in_each_engines_own_terms(tmp_path: Path) -> None:
    session = make_spec(tmp_path)
    contract = session.tmpfs["/scratch"]
    assert contract.endswith(",exec,mode=0700,uid=1500,gid=1500")
    for name in (DOCKER, DOCKER_ROOTLESS):  # Docker takes uid=/gid= (and refuses `U`)
        assert create_kwargs(session, facts(name))["tmpfs"] == {"/scratch": contract}
    size = contract.split(",")[0]
    for name in (PODMAN, PODMAN_ROOTLESS):  # Podman refuses uid=/gid=; `U` is the container user's
        assert create_kwargs(session, facts(name))["tmpfs"] == {"/scratch": f"{size},exec,mode=0700,U"}
    assert create_kwargs(session)["tmpfs"] == {"/scratch": contract}  # no facts: rootful Docker's terms


def test_a_tmpfs_without_an_owner_gets_no_U() -> None:
    assert engine_tmpfs({"/tmp": "size=1024,mode=1777"}, facts(PODMAN)) == {"/tmp": "size=1024,mode=1777"}


# --- G: rootless Podman's keep-id --------------------------------------------------------------------


def test_rootless_podman_maps_the_session_user_to_the_engines_user(tmp_path: Path) -> None:
    session = make_spec(tmp_path)
    assert host_config_extras(session, facts(PODMAN_ROOTLESS)) == {"UsernsMode": "keep-id:uid=1500,gid=1500"}
    for name in (DOCKER, DOCKER_ROOTLESS, PODMAN):
        assert host_config_extras(session, facts(name)) == {}
    # Before Podman 4.3 keep-id took no uid: the engine's user keeps its own uid inside.
    older = dataclasses.replace(facts(PODMAN_ROOTLESS), version="4.2.0")
    assert host_config_extras(session, older) == {"UsernsMode": "keep-id"}
    assert "4.3" in older.arc_owner_advice


def test_rootless_docker_says_what_to_do_about_arc() -> None:
    advice = facts(DOCKER_ROOTLESS).arc_owner_advice
    assert "subordinate uid" in advice and "nsenter" in advice
    assert facts(DOCKER).arc_owner_advice == facts(PODMAN_ROOTLESS).arc_owner_advice == ""


def test_keep_id_goes_on_the_raw_host_config(tmp_path: Path) -> None:
    """The SDK refuses userns_mode="keep-id": the SDK's own translation, then the field set on HostConfig."""
    session = make_spec(tmp_path)
    api = docker.APIClient(base_url="unix:///nonexistent.sock", version="1.41")  # never connects here
    sent: dict[str, Any] = {}
    api.create_container = lambda **args: sent.update(args) or {"Id": "abc"}
    client = SimpleNamespace(api=api, containers=SimpleNamespace(get=lambda container_id: container_id))
    podman = facts(PODMAN_ROOTLESS)
    assert create_container(client, create_kwargs(session, podman), host_config_extras(session, podman)) == "abc"
    host_config = sent["host_config"]
    assert host_config["UsernsMode"] == "keep-id:uid=1500,gid=1500"
    assert sent["user"] == "1500:1500" and host_config["Tmpfs"]["/scratch"].endswith(",U")
    assert host_config["CapDrop"] == ["ALL"] and host_config["Memory"] == session.memory_bytes
    with pytest.raises(ValueError, match="userns_mode"):  # why: the SDK's own check
        api.create_host_config(userns_mode="keep-id")


# --- SELinux --------------------------------------------------------------------------------------------


def test_selinux_relabels_bind_mounts_by_default_where_the_engine_labels(tmp_path: Path) -> None:
    session = make_spec(tmp_path)
    labelled = facts(PODMAN, SecurityOptions=["name=seccomp,profile=default", "name=selinux"])  # a Fedora host
    assert labelled.selinux
    kwargs = create_kwargs(session, labelled)
    binds = {b.split(":")[1]: b for b in kwargs["volumes"]}
    assert binds["/arc"] == f"{tmp_path / 'arc'}:/arc:rw,z"
    assert set(binds) == {m.target for m in session.mounts} and kwargs["mounts"] == []
    read_only = [m for m in session.mounts if m.read_only]
    assert read_only and all(binds[m.target].endswith(":ro,z") for m in read_only)
    assert "label=disable" not in kwargs["security_opt"]
    # No SELinux: bind mounts as before.
    plain = create_kwargs(session, facts(PODMAN))
    assert "volumes" not in plain and len(plain["mounts"]) == len(session.mounts)


def test_selinux_modes(tmp_path: Path) -> None:
    session = make_spec(tmp_path)
    labelled = facts(DOCKER, SecurityOptions=["name=seccomp,profile=default", "name=selinux"])
    disabled = create_kwargs(session, labelled, selinux="disable")
    assert disabled["security_opt"] == ["no-new-privileges:true", "label=disable"] and "volumes" not in disabled
    off = create_kwargs(session, labelled, selinux="off")
    assert off["security_opt"] == ["no-new-privileges:true"] and "volumes" not in off
    forced = create_kwargs(session, facts(DOCKER), selinux="relabel")  # asked for, SELinux or not
    assert all(b.endswith(",z") for b in forced["volumes"])
    with pytest.raises(InvalidRequest, match="EMULATE_SELINUX"):
        create_kwargs(session, labelled, selinux="permissive")


# --- B, C: networks ---------------------------------------------------------------------------------------


class StubApi:
    def __init__(self, error: docker.errors.APIError) -> None:
        self.error = error

    def connect_container_to_network(self, container: str, network: str) -> None:
        raise self.error

    def networks(self, names: list[str]) -> list[dict[str, Any]]:
        return []


class StubNetworks:
    def __init__(self, error: docker.errors.APIError) -> None:
        self.error = error

    def create(self, *args: Any, **kwargs: Any) -> None:
        raise self.error


def runtime_raising(error: docker.errors.APIError, name: str = PODMAN) -> DockerRuntime:
    client = StubClient(name)
    client.api = StubApi(error)
    client.networks = StubNetworks(error)
    return DockerRuntime({}, client=client)


@pytest.mark.parametrize(
    "error",
    [
        api_error(403, "endpoint with name emulate-gateway already exists in network emulate-u"),  # Docker
        api_error(500, "network is already connected"),  # Podman
    ],
)
def test_already_connected_is_done(error: docker.errors.APIError) -> None:
    runtime_raising(error)._connect("emulate-u", "emulate-gateway")


def test_another_connect_failure_is_not() -> None:
    with pytest.raises(docker.errors.APIError):
        runtime_raising(api_error(404, "no such container"))._connect("emulate-u", "emulate-gateway")


@pytest.mark.parametrize(
    "words",
    [
        "Pool overlaps with other one on this address space",  # Docker
        "subnet 198.18.0.0/26 is already used on the host or by another config",  # Podman
    ],
)
def test_a_taken_subnet_is_a_typed_error(words: str) -> None:
    with pytest.raises(SubnetTaken, match="198.18.0.0/26"):
        runtime_raising(api_error(500, words))._create_network("emulate-u", {}, "198.18.0.0/26")


def test_other_network_refusals_stay_the_engines() -> None:
    with pytest.raises(docker.errors.APIError):
        runtime_raising(api_error(500, "plugin not found"))._create_network("emulate-u", {}, "198.18.0.0/26")


# --- the engine's refusal, in words -----------------------------------------------------------------------


class RefusingContainers:
    def __init__(self, error: docker.errors.APIError) -> None:
        self.error = error

    def get(self, name: str) -> Any:
        raise docker.errors.NotFound("no such container")

    def create(self, **kwargs: Any) -> Any:
        raise self.error


class OneEmptyNetwork:
    """The engine's answer for the session's network: its subnet, no container on it yet (where, on Podman,
    the runtime picks the session's address)."""

    _version = "1.41"

    def inspect_network(self, name: str) -> dict[str, Any]:
        return {"IPAM": {"Config": [{"Subnet": "198.18.0.0/26", "Gateway": "198.18.0.1"}]}, "Containers": {}}


def test_a_refused_container_fails_the_launch_with_the_engines_words(tmp_path: Path) -> None:
    client = StubClient(PODMAN)
    words = 'container create: unknown mount option "uid=20001": invalid mount option'
    client.containers = RefusingContainers(api_error(500, words))
    client.api = OneEmptyNetwork()
    runtime = DockerRuntime({}, client=client)
    with pytest.raises(EngineRefused) as refused:
        runtime._run(make_spec(tmp_path))
    assert refused.value.message == f"The container engine would not create the session's container: {words}"


def test_the_service_refuses_an_unknown_selinux_mode() -> None:
    with pytest.raises(InvalidRequest, match="EMULATE_SELINUX"):
        DockerRuntime({}, client=StubClient(DOCKER), selinux="on")


def test_selinux_setting_is_checked_when_read() -> None:
    with pytest.raises(ValueError):
        Settings(selinux="on")
    assert Settings().selinux == "auto"


class SubnetsTakenOnTheHost:
    """A runtime whose engine refuses the first subnets as used on the host (Podman), as a typed error."""

    def __init__(self, taken: int) -> None:
        self.taken = taken
        self.tried: list[str] = []
        self.made: list[str] = []

    async def networks(self) -> list[Any]:
        return []

    async def create_network(self, name: str, labels: dict[str, str], subnet: str) -> None:
        self.tried.append(subnet)
        if len(self.tried) <= self.taken:
            raise SubnetTaken(f"subnet {subnet} is in use: subnet {subnet} is already used on the host")
        self.made.append(subnet)

    async def connect(self, network: str, container: str) -> None:
        pass


def test_a_subnet_the_host_uses_is_passed_over() -> None:
    runtime = SubnetsTakenOnTheHost(taken=2)
    # A stand-in for the four network calls UserNetworks makes, not a whole Runtime.
    networks = UserNetworks(runtime, Settings(instance="t1"))  # type: ignore[arg-type]
    asyncio.run(networks.ensure("alice"))
    assert runtime.tried == ["198.18.0.0/26", "198.18.0.64/26", "198.18.0.128/26"]
    assert runtime.made == ["198.18.0.128/26"]


class RecordingContainers(RefusingContainers):
    """Refuses every create, keeping what it was asked."""

    def __init__(self) -> None:
        super().__init__(api_error(500, "refused after recording"))
        self.asked: list[dict[str, Any]] = []

    def create(self, **kwargs: Any) -> Any:
        self.asked.append(kwargs)
        raise self.error


@pytest.mark.parametrize("name", [DOCKER, PODMAN])
def test_on_podman_a_session_gets_an_address_with_dockers_mac_for_it(name: str, tmp_path: Path) -> None:
    client = StubClient(name)
    client.containers = containers = RecordingContainers()
    client.api = OneEmptyNetwork()
    with pytest.raises(EngineRefused):
        DockerRuntime({}, client=client)._run(make_spec(tmp_path))
    asked = containers.asked[0]
    if name == DOCKER:  # Docker derives the MAC from the address it picks: nothing to choose
        assert "networking_config" not in asked
        return
    endpoint = asked["networking_config"][make_spec(tmp_path).network]
    # The first address after the gateway's, and the MAC Docker's bridge would give it.
    assert endpoint == {"IPAMConfig": {"IPv4Address": "198.18.0.2"}, "MacAddress": "02:42:c6:12:00:02"}


@pytest.mark.parametrize(
    ("sdk_words", "said"),
    [
        (
            "Error while fetching server API version: HTTPConnectionPool(host='127.0.0.1', port=1): Max retries "
            'exceeded with url: /version (Caused by NewConnectionError("...: Failed to establish a new '
            'connection: [Errno 111] Connection refused"))',
            "Connection refused",
        ),
        (
            "Error while fetching server API version: ('Connection aborted.', FileNotFoundError(2, 'No such file "
            "or directory'))",
            "No such file or directory",
        ),
        ("something else entirely", "something else entirely"),
    ],
)
def test_an_unreachable_engine_is_said_in_the_systems_words_not_the_sdks_wrapping(sdk_words: str, said: str) -> None:
    from emulator.runtime.docker import docker_errors

    with pytest.raises(Unavailable) as raised, docker_errors():
        raise docker.errors.DockerException(sdk_words)
    assert raised.value.message.startswith(f"cannot reach the Docker engine ({said}); is the engine running?")


# --- a session's own layer ----------------------------------------------------------------------------------


def test_a_layer_is_capped_only_where_the_engines_storage_can(tmp_path: Path) -> None:
    capped = dataclasses.replace(make_spec(tmp_path), layer_max_bytes=5 * 1024**3)
    assert "storage_opt" not in create_kwargs(capped, facts(DOCKER))  # overlay2 on ext4 (this machine's)
    assert not facts(PODMAN).layer_limit_possible
    xfs = facts(DOCKER, DriverStatus=[["Backing Filesystem", "xfs"]])
    assert xfs.layer_limit_possible and create_kwargs(capped, xfs)["storage_opt"] == {"size": str(5 * 1024**3)}
    assert facts(DOCKER, Driver="btrfs").layer_limit_possible
    assert "storage_opt" not in create_kwargs(make_spec(tmp_path), xfs)  # no cap asked for


class CountingContainers(RefusingContainers):
    """Refuses a size for the layer (XFS without project quotas), then creates what it is asked for."""

    def __init__(self, error: docker.errors.APIError) -> None:
        super().__init__(error)
        self.asked: list[dict[str, Any]] = []

    def create(self, **kwargs: Any) -> Any:
        self.asked.append(kwargs)
        if "storage_opt" in kwargs:
            raise self.error
        return StubContainer()


class StubContainer:
    status = "running"
    attrs: dict[str, Any] = {"NetworkSettings": {"Networks": {}}, "State": {}}
    name = "made"
    labels: dict[str, str] = {}

    def reload(self) -> None:
        pass


def test_a_layer_size_the_engine_refuses_is_asked_no_more_and_the_launch_goes_on(tmp_path: Path) -> None:
    words = "--storage-opt is supported only for overlay over xfs with 'pquota' mount option"
    client = StubClient(DOCKER, DriverStatus=[["Backing Filesystem", "xfs"]])
    client.containers = CountingContainers(api_error(500, words))
    runtime = DockerRuntime({}, client=client)
    capped = dataclasses.replace(make_spec(tmp_path), layer_max_bytes=1024**3)
    runtime._create(capped)
    runtime._create(capped)
    asked = client.containers.asked
    assert ["storage_opt" in kwargs for kwargs in asked] == [True, False, False]


# --- a pull whose registry went away mid-way ----------------------------------------------------------------


class StubResponse:
    def close(self) -> None:
        pass


class PullStream:
    """The engine's answer to a pull: these progress messages, as `docker pull` streams them."""

    _version = "1.41"

    def __init__(self, chunks: list[dict[str, Any]]) -> None:
        self.chunks = chunks

    def _url(self, path: str) -> str:
        return path

    def _post(self, *args: Any, **kwargs: Any) -> Any:
        return StubResponse()

    def _raise_for_status(self, response: Any) -> None:
        pass

    def _stream_helper(self, response: Any, decode: bool) -> Iterator[dict[str, Any]]:
        yield from self.chunks


RETRYING: list[dict[str, Any]] = [
    {"id": "abc", "status": "Downloading", "progressDetail": {"current": 1 << 20, "total": 24 << 20}},
    *({"id": "abc", "status": f"Retrying in {n} seconds"} for n in (5, 4, 3, 2, 1)),
    {"error": "dial tcp 127.0.0.1:5000: connect: connection refused"},
]


def test_a_pull_the_engine_only_retries_fails_at_the_stall_limit_not_after_every_retry() -> None:
    client = StubClient(DOCKER)
    client.api = PullStream(RETRYING)
    impatient = DockerRuntime({}, client=client, pull_stall=0.0)
    with pytest.raises(ImagePullError, match="stopped answering during the pull: the engine kept retrying"):
        impatient._pull("127.0.0.1:5000/x:1", None, lambda update: None)
    patient = DockerRuntime({}, client=client, pull_stall=300.0)
    with pytest.raises(ImagePullError, match=r"stopped answering during the pull \(dial tcp"):
        patient._pull("127.0.0.1:5000/x:1", None, lambda update: None)  # the engine's own end, in its words
