"""GPU discovery against a fake NVML (this machine has no GPU; a lent GPU machine checks the real one)."""

from types import SimpleNamespace

from emulator.runtime import gpus


def _fake_nvml(count: int, fail_init: bool = False) -> SimpleNamespace:
    calls: list[str] = []

    def init() -> None:
        calls.append("init")
        if fail_init:
            raise RuntimeError("NVML Shared Library Not Found")

    return SimpleNamespace(
        calls=calls,
        nvmlInit=init,
        nvmlShutdown=lambda: calls.append("shutdown"),
        nvmlDeviceGetCount=lambda: count,
        nvmlDeviceGetHandleByIndex=lambda i: i,
        nvmlDeviceGetUUID=lambda handle: f"GPU-{handle:04d}".encode(),
    )


def test_discovers_every_gpu_by_uuid_and_shuts_nvml_down() -> None:
    fake = _fake_nvml(2)
    assert gpus.discover(fake) == ["GPU-0000", "GPU-0001"]  # type: ignore[arg-type]
    assert fake.calls == ["init", "shutdown"]


def test_no_driver_means_no_gpus() -> None:
    assert gpus.discover(_fake_nvml(2, fail_init=True)) == []  # type: ignore[arg-type]
