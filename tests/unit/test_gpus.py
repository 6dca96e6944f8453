"""GPUs through a test double of the `pynvml` module (tests/unit/fake_nvml.py: this machine has no GPU; a lent
GPU machine runs benchmarks/gpu_check.py against the real one)."""

from __future__ import annotations

from emulator.api import views
from emulator.core.models import Status, User
from emulator.runtime.base import Usage
from emulator.runtime.gpus import Gpu, Nvml
from tests.factories import make_session
from tests.unit.fake_nvml import GIB, TWO, FakeNvml


def test_discovers_every_gpu_in_index_order_with_its_name_and_memory() -> None:
    fake = FakeNvml(TWO)
    nvml = Nvml(fake)
    assert nvml.open() == [
        Gpu(0, "GPU-aaaa", "NVIDIA H100 80GB HBM3", 80 * GIB),
        Gpu(1, "GPU-bbbb", "NVIDIA H100 80GB HBM3", 80 * GIB),
    ]
    nvml.close()
    assert fake.calls == ["init", "shutdown"]


def test_no_driver_means_no_gpus_and_says_why() -> None:
    nvml = Nvml(FakeNvml(TWO, fail_init=True))
    assert nvml.open() == []
    assert "NVML Shared Library Not Found" in nvml.absent_because
    assert nvml.usage(["GPU-aaaa"]) is None
    nvml.close()  # nothing was opened: nothing to shut down


def test_a_sessions_gpu_figures_are_its_own_gpus() -> None:
    nvml = Nvml(FakeNvml(TWO))
    nvml.open()
    assert nvml.usage(["GPU-bbbb"]) == (6 * GIB, 90.0)
    assert nvml.usage(["GPU-aaaa", "GPU-bbbb"]) == (8 * GIB, 60.0)
    assert nvml.usage([]) is None


def test_session_json_carries_the_gpu_figures_of_a_session_with_gpus() -> None:
    nvml = Nvml(FakeNvml(TWO))
    nvml.open()
    figures = nvml.usage(["GPU-bbbb"])
    assert figures is not None
    usage = Usage(512 * 1024**2, 0.25, gpu_memory_bytes=figures[0], gpu_utilization=figures[1])
    session = make_session(gpu_devices=["GPU-bbbb"], status=Status.RUNNING)
    user = User("alice", 20001, 20001)
    document = views.session_json(session, user, "url", usage, "v0")
    assert (document["gpuRAMInUse"], document["gpuUtilization"]) == ("6144M", "90%")
    plain = views.session_json(make_session(), user, "url", Usage(1, 0.1), "v0")
    assert (plain["gpuRAMInUse"], plain["gpuUtilization"]) == ("<none>", "<none>")
