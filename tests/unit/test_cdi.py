"""GPUs through CDI as well as through the NVIDIA runtime, against fake CDI specs (this machine has no GPU).

The specs are written as `nvidia-ctk cdi generate` writes them (a device per index, per uuid, and `all`);
the GPUs come from the fake NVML (tests/unit/fake_nvml.py); the engines are the recorded answers
(tests/unit/recorded_engines.py), with the version or field a CDI-capable engine differs by, said at each use.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from docker.types import DeviceRequest

from emulator.runtime.docker import DockerRuntime, create_kwargs, service_gpus
from emulator.runtime.gpus import Gpu, Nvml, cdi_device_names, cdi_names
from tests.factories import make_spec
from tests.unit.fake_nvml import TWO, FakeNvml
from tests.unit.recorded_engines import DOCKER, PODMAN, StubClient, facts

YAML_SPEC = """\
cdiVersion: 0.5.0
kind: nvidia.com/gpu
devices:
- name: "0"
  containerEdits:
    deviceNodes: [{path: /dev/nvidia0}]
- name: GPU-aaaa
  containerEdits:
    deviceNodes: [{path: /dev/nvidia0}]
- name: "1"
  containerEdits:
    deviceNodes: [{path: /dev/nvidia1}]
- name: all
  containerEdits:
    deviceNodes: [{path: /dev/nvidia0}, {path: /dev/nvidia1}]
containerEdits:
  deviceNodes: [{path: /dev/nvidiactl}]
"""


def gpus() -> list[Gpu]:
    return Nvml(FakeNvml(TWO)).open()  # GPU-aaaa (index 0), GPU-bbbb (index 1)


def spec_folder(tmp_path: Path, text: str = YAML_SPEC, name: str = "nvidia.yaml") -> Path:
    folder = tmp_path / "cdi"
    folder.mkdir(exist_ok=True)
    (folder / name).write_text(text)
    return folder


def test_cdi_specs_are_read_as_yaml_or_json(tmp_path: Path) -> None:
    folder = spec_folder(tmp_path)
    other = {"cdiVersion": "0.5.0", "kind": "vendor.example/fpga", "devices": [{"name": "f0", "containerEdits": {}}]}
    (folder / "fpga.json").write_text(json.dumps(other))
    (folder / "broken.yaml").write_text("kind: [unclosed")
    (folder / "notes.txt").write_text("kind: nvidia.com/gpu")
    assert cdi_device_names([str(folder), str(tmp_path / "absent")]) == {"0", "1", "GPU-aaaa", "all"}
    assert cdi_device_names([str(folder)], kind="vendor.example/fpga") == {"f0"}


def test_each_gpu_is_named_by_uuid_where_the_spec_can_else_by_index(tmp_path: Path) -> None:
    names = cdi_device_names([str(spec_folder(tmp_path))])
    assert cdi_names(gpus(), names) == {"GPU-aaaa": "nvidia.com/gpu=GPU-aaaa", "GPU-bbbb": "nvidia.com/gpu=1"}
    assert cdi_names(gpus(), {"0"}) == {"GPU-aaaa": "nvidia.com/gpu=0"}  # GPU-bbbb unnamed: left out


def test_sessions_get_gpus_by_cdi_name_on_an_engine_without_the_nvidia_runtime(tmp_path: Path) -> None:
    folder = str(spec_folder(tmp_path))
    # Docker 25+ with CDI enabled reports its spec folders; this one: Docker 20.10's answer with those two fields.
    client = StubClient(DOCKER, {"Version": "25.0.3", "ApiVersion": "1.44"}, CDISpecDirs=[folder])
    runtime = DockerRuntime({}, client=client)
    assert runtime.gpu_access(gpus()) == ""
    session = make_spec(tmp_path)
    with_gpus = dataclasses.replace(session, gpu_devices=["GPU-bbbb"])
    kwargs = create_kwargs(with_gpus, runtime.facts(), cdi=runtime._cdi)
    assert kwargs["device_requests"] == [DeviceRequest(driver="cdi", device_ids=["nvidia.com/gpu=1"])]
    # Through the NVIDIA runtime (no CDI names given): by uuid, with the gpu capability, as before.
    assert create_kwargs(with_gpus, facts(DOCKER))["device_requests"] == [
        DeviceRequest(device_ids=["GPU-bbbb"], capabilities=[["gpu"]])
    ]


def test_podman_takes_cdi_through_its_docker_api_from_5_4(tmp_path: Path) -> None:
    folder = str(spec_folder(tmp_path))
    old = DockerRuntime({}, client=StubClient(PODMAN))
    refusal = old.gpu_access(gpus(), cdi_folders=(folder,))
    assert "Podman 4.3.1" in refusal and "Podman 5.4 or later" in refusal
    # Podman's answer as 5.4 gives it: only the version differs for what is decided here.
    newer = StubClient(PODMAN, {"Components": [{"Name": "Podman Engine", "Version": "5.4.0"}]})
    runtime = DockerRuntime({}, client=newer)
    assert runtime.gpu_access(gpus(), cdi_folders=(folder,)) == ""
    assert runtime._cdi == {"GPU-aaaa": "nvidia.com/gpu=GPU-aaaa", "GPU-bbbb": "nvidia.com/gpu=1"}


def test_gpus_nothing_hands_over_are_refused_with_what_to_do(tmp_path: Path) -> None:
    runtime = DockerRuntime({}, client=StubClient(DOCKER))
    refusal = runtime.gpu_access(gpus(), cdi_folders=(str(tmp_path),))
    assert "nvidia-ctk runtime configure" in refusal and "nvidia-ctk cdi generate" in refusal
    only_first = spec_folder(tmp_path, YAML_SPEC.replace('- name: "1"', '- name: "7"'))
    docker25 = StubClient(DOCKER, {"Version": "25.0.3"}, CDISpecDirs=[str(only_first)])
    partial = DockerRuntime({}, client=docker25)
    assert "GPU-bbbb" in partial.gpu_access(gpus())
    with_runtime = StubClient(DOCKER, Runtimes={"runc": {}, "nvidia": {"path": "nvidia-container-runtime"}})
    assert DockerRuntime({}, client=with_runtime).gpu_access(gpus()) == ""


def test_the_service_sees_every_gpu_through_cdi_or_the_runtime(tmp_path: Path) -> None:
    folder = str(spec_folder(tmp_path))
    nvidia = facts(DOCKER, Runtimes={"runc": {}, "nvidia": {"path": "nvidia-container-runtime"}})
    assert service_gpus(nvidia) == (DeviceRequest(count=-1, capabilities=[["gpu"]]), [])
    docker25 = dataclasses.replace(facts(DOCKER, CDISpecDirs=[folder, str(tmp_path / "absent")]), version="25.0.3")
    assert service_gpus(docker25) == (DeviceRequest(driver="cdi", device_ids=["nvidia.com/gpu=all"]), [folder])
    assert service_gpus(facts(DOCKER, CDISpecDirs=[str(tmp_path / "absent")])) == (None, [])
