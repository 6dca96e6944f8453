"""The contract in Swarm's terms (runtime.swarm.service_spec) and Swarm's task states read back, pure."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from emulator.core.contract import build_spec
from emulator.core.models import Resources
from emulator.profiles import load_profiles
from emulator.runtime.base import Mount
from emulator.runtime.docker import create_kwargs
from emulator.runtime.swarm import config_files, gpu_count, service_spec, task_state, travels_as_config
from emulator.settings import REPO_ROOT, Settings
from tests.factories import USER, make_session, make_spec

GIB = 1024**3


def test_a_session_is_a_one_task_service_under_the_same_contract(tmp_path: Path) -> None:
    spec = make_spec(tmp_path)
    created = service_spec(spec)
    task = created["task_template"]
    container = task["ContainerSpec"]
    assert created["name"] == spec.name and created["labels"] == spec.labels
    assert created["mode"]["replicated"]["Replicas"] == 1
    assert created["endpoint_spec"]["Mode"] == "dnsrr"  # the name resolves to the task: routing as on one engine
    assert task["RestartPolicy"]["Condition"] == "none"
    assert container["Command"] == spec.entrypoint and container.get("Args") is None
    assert container["User"] == "1500:1500" and container["Groups"] == ["3001"]
    assert container["CapabilityDrop"] == ["ALL"]
    assert container["Hostname"] == spec.hostname and container["Dir"] == "/arc/home/alice"
    assert container["Labels"] == spec.labels
    assert sorted(container["Env"]) == sorted(f"{k}={v}" for k, v in spec.environment.items())
    limits, reservations = task["Resources"]["Limits"], task["Resources"]["Reservations"]
    assert limits == {"NanoCPUs": 2_000_000_000, "MemoryBytes": 8 * GIB, "Pids": spec.pids_limit}
    assert reservations == {"NanoCPUs": spec.nano_cpus_reservation, "MemoryBytes": spec.memory_reservation_bytes}
    mounts = {m["Target"]: m for m in container["Mounts"]}
    assert mounts["/arc"]["Type"] == "bind" and mounts["/arc"]["Source"] == str(tmp_path / "arc")
    # The service's own files (passwd, group, the launch scripts) are not on the other machines: configs.
    assert set(mounts) == {"/arc", "/scratch"}
    scratch = mounts["/scratch"]
    assert scratch["Type"] == "tmpfs" and scratch["TmpfsOptions"] == {"SizeBytes": 4 * GIB, "Mode": 0o1777}
    assert [n["Target"] for n in task["Networks"]] == [spec.network]
    rotated = {"max-size": str(10 * 1024 * 1024), "max-file": "3"}  # the profile's default log cap
    assert task["LogDriver"] == {"Name": "json-file", "Options": rotated}
    assert create_kwargs(spec)["log_config"] == {"Type": "json-file", "Config": rotated}  # as on one engine


def test_requests_are_reservations_limits_are_limits(tmp_path: Path) -> None:
    spec = make_spec(tmp_path)
    assert (spec.nano_cpus_reservation, spec.memory_reservation_bytes) == (2_000_000_000, 8 * GIB)  # fixed
    assert "mem_reservation" not in create_kwargs(spec)  # one engine: limits only, as before


def test_arc_over_nfs_is_a_volume_of_the_local_driver_on_every_machine(tmp_path: Path) -> None:
    spec = make_spec(tmp_path, arc_nfs="nfs.example:/export/arc")
    for mounts in (service_spec(spec)["task_template"]["ContainerSpec"]["Mounts"], create_kwargs(spec)["mounts"]):
        arc = next(m for m in mounts if m["Target"] == "/arc")
        assert arc["Type"] == "volume" and arc["Source"] == "emulate-t1-arc"
        driver = arc["VolumeOptions"]["DriverConfig"]
        assert driver["Name"] == "local"
        assert driver["Options"] == {"type": "nfs", "o": "addr=nfs.example,rw,nfsvers=4", "device": ":/export/arc"}
    with pytest.raises(ValueError, match="server:/path"):
        Settings(arc_nfs="/export/arc")


NODES = {
    "n1": {"Description": {"Hostname": "alpha"}, "Status": {"State": "ready"}},
    "n2": {"Description": {"Hostname": "beta"}, "Status": {"State": "down"}},
}


def _task(state: str, node: str = "n1", **status: Any) -> dict[str, Any]:
    return {
        "NodeID": node,
        "Status": {"State": state, **status},
        "NetworksAttachments": [{"Addresses": ["198.18.0.5/26"]}],
    }


def test_task_states_read_as_the_platform_reads_a_container() -> None:
    assert task_state("s", {}, None, NODES).state == "pending"
    waiting = task_state("s", {}, _task("pending", "", Err="no suitable node (insufficient resources on 3 nodes)"), {})
    assert (waiting.state, waiting.reason) == ("pending", "no suitable node (insufficient resources on 3 nodes)")
    running = task_state("s", {}, _task("running"), NODES)
    assert (running.state, running.address, running.node) == ("running", "198.18.0.5", "alpha")
    failed = task_state("s", {}, _task("failed", ContainerStatus={"ExitCode": 3}), NODES)
    assert (failed.state, failed.exit_code) == ("exited", 3)
    lost = task_state("s", {}, _task("running", "n2"), NODES)
    assert lost.state == "dead" and lost.reason is not None and "machine was lost: node beta" in lost.reason
    # Its own end is told by its exit code alone (the start-up failure and OOM messages stay the platform's).
    ended = task_state("s", {}, _task("failed", Err="task: non-zero exit (1)", ContainerStatus={"ExitCode": 1}), NODES)
    assert (ended.state, ended.exit_code, ended.reason) == ("exited", 1, None)
    done = task_state("s", {}, _task("complete", ContainerStatus={"ExitCode": 0}), NODES)
    assert (done.state, done.exit_code, done.reason) == ("exited", 0, None)
    rejected = task_state("s", {}, _task("rejected", Err="No such image: nope:1"), NODES)
    assert (rejected.state, rejected.reason) == ("dead", "No such image: nope:1")
    shut = task_state("s", {}, _task("shutdown"), NODES)
    assert shut.state == "dead" and shut.reason == "Swarm says the task is shutdown"
    assigned = task_state("s", {}, _task("preparing"), NODES)
    assert (assigned.state, assigned.node, assigned.reason) == ("pending", "alpha", None)


def test_a_flexible_session_reserves_nothing(tmp_path: Path) -> None:
    config = Settings(instance="t1", state_dir=tmp_path / "s", arc_dir=tmp_path / "arc")
    profile = load_profiles(REPO_ROOT / "profiles")["notebook"]
    flexible = make_session()
    flexible.resources = Resources(1, 2, 4, 8, fixed=False)
    task = service_spec(build_spec(profile, flexible, USER, config))["task_template"]
    assert not task["Resources"].get("Reservations")
    assert task["Resources"]["Limits"]["NanoCPUs"] == 2_000_000_000


def test_gpus_are_swarm_generic_resources(tmp_path: Path) -> None:
    config = Settings(instance="t1", state_dir=tmp_path / "s", arc_dir=tmp_path / "arc")
    profile = load_profiles(REPO_ROOT / "profiles")["notebook"]
    session = make_session()
    session.resources = Resources(2, 2, 8, 8, gpus=2, fixed=True)
    reservations = service_spec(build_spec(profile, session, USER, config))["task_template"]["Resources"]
    assert reservations["Reservations"]["GenericResources"] == [
        {"DiscreteResourceSpec": {"Kind": "NVIDIA-GPU", "Value": 2}}
    ]
    advertised: list[dict[str, Any]] = [
        {"NamedResourceSpec": {"Kind": "NVIDIA-GPU", "Value": "GPU-a"}},
        {"NamedResourceSpec": {"Kind": "NVIDIA-GPU", "Value": "GPU-b"}},
        {"DiscreteResourceSpec": {"Kind": "SSD", "Value": 1}},
    ]
    assert gpu_count(advertised) == 2 and gpu_count(None) == 0


def test_read_only_files_travel_as_configs(tmp_path: Path) -> None:
    scripts = tmp_path / "skaha-system"
    scripts.mkdir()
    (scripts / "start.sh").write_text("#!/bin/sh\n")
    (scripts / "menu.py").write_text("print()\n")
    passwd = tmp_path / "passwd"
    passwd.write_text("alice:x:1500:1500::/arc/home/alice:/sbin/nologin\n")
    folder, file, arc = Mount(str(scripts), "/skaha-system", True), Mount(str(passwd), "/etc/passwd", True), None
    assert config_files(folder) == [
        (scripts / "menu.py", "/skaha-system/menu.py"),
        (scripts / "start.sh", "/skaha-system/start.sh"),
    ]
    assert config_files(file) == [(passwd, "/etc/passwd")]
    arc = Mount(str(tmp_path), "/arc")
    assert travels_as_config(folder) and travels_as_config(file) and not travels_as_config(arc)
    assert not travels_as_config(Mount("emulate-arc", "/arc", read_only=True, nfs="nfs:/arc"))
