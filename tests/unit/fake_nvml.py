"""A test double of the `pynvml` module, over a table of GPUs (this machine has no GPU; a lent GPU machine runs
benchmarks/gpu_check.py against the real one)."""

from __future__ import annotations

from types import SimpleNamespace

GIB = 1 << 30


class FakeNvml:
    """pynvml's calls the emulator makes, over a table of GPUs (names, memory, figures)."""

    def __init__(self, gpus: list[dict[str, object]], fail_init: bool = False) -> None:
        self.gpus = gpus
        self.fail_init = fail_init
        self.calls: list[str] = []

    def nvmlInit(self) -> None:
        self.calls.append("init")
        if self.fail_init:
            raise RuntimeError("NVML Shared Library Not Found")

    def nvmlShutdown(self) -> None:
        self.calls.append("shutdown")

    def nvmlDeviceGetCount(self) -> int:
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> int:
        return index

    def nvmlDeviceGetHandleByUUID(self, uuid: bytes) -> int:
        assert isinstance(uuid, bytes), "pynvml's c_char_p wants bytes"
        return next(i for i, g in enumerate(self.gpus) if g["uuid"] == uuid.decode())

    def nvmlDeviceGetUUID(self, handle: int) -> bytes:
        return str(self.gpus[handle]["uuid"]).encode()

    def nvmlDeviceGetName(self, handle: int) -> bytes:
        return str(self.gpus[handle]["name"]).encode()

    def nvmlDeviceGetMemoryInfo(self, handle: int) -> SimpleNamespace:
        return SimpleNamespace(total=self.gpus[handle]["total"], used=self.gpus[handle]["used"])

    def nvmlDeviceGetUtilizationRates(self, handle: int) -> SimpleNamespace:
        return SimpleNamespace(gpu=self.gpus[handle]["utilization"], memory=0)


TWO = [
    {"uuid": "GPU-aaaa", "name": "NVIDIA H100 80GB HBM3", "total": 80 * GIB, "used": 2 * GIB, "utilization": 30},
    {"uuid": "GPU-bbbb", "name": "NVIDIA H100 80GB HBM3", "total": 80 * GIB, "used": 6 * GIB, "utilization": 90},
]
