"""This machine's NVIDIA GPUs through NVML (nvidia-ml-py's `pynvml`), held open while the service runs.

No NVML library, no driver, or no GPU: no GPUs (and the reason is kept, for the error a GPU request
gets). The figures of a GPU (memory used, utilization) are read when asked for; a session's GPUs
are its own, so a GPU's figures are that session's.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from types import ModuleType
from typing import Any

log = logging.getLogger("emulator.gpus")


@dataclass(frozen=True)
class Gpu:
    index: int
    uuid: str  # what Docker's device requests and NVIDIA_VISIBLE_DEVICES name
    name: str
    memory_bytes: int


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _nvml() -> ModuleType | None:
    try:
        import pynvml
    except ImportError:
        return None
    return pynvml  # type: ignore[no-any-return]


class Nvml:
    def __init__(self, module: ModuleType | Any | None = None) -> None:
        self._nvml: Any = module if module is not None else _nvml()
        self._open = False
        self.gpus: list[Gpu] = []
        self.absent_because = "no NVIDIA GPU on this machine"

    def open(self) -> list[Gpu]:
        """Find the GPUs (index order); NVML stays open for their figures until `close`."""
        if self._nvml is None:
            self.absent_because = "no NVIDIA GPU on this machine (the NVML library, nvidia-ml-py, is not installed)"
            return []
        try:
            self._nvml.nvmlInit()
        except Exception as exc:  # NVMLError when there is no driver: any failure means no usable GPU
            self.absent_because = f"no NVIDIA GPU on this machine (NVML: {exc})"
            log.info("no GPUs: %s", exc)
            return []
        self._open = True
        found = []
        try:
            count = self._nvml.nvmlDeviceGetCount()
        except Exception as exc:
            self.absent_because = f"no NVIDIA GPU on this machine (NVML: {exc})"
            return []
        for index in range(count):
            try:
                handle = self._nvml.nvmlDeviceGetHandleByIndex(index)
                gpu = Gpu(
                    index=index,
                    uuid=_text(self._nvml.nvmlDeviceGetUUID(handle)),
                    name=_text(self._nvml.nvmlDeviceGetName(handle)),
                    memory_bytes=int(self._nvml.nvmlDeviceGetMemoryInfo(handle).total),
                )
            except Exception as exc:  # a GPU NVML cannot read (fallen off the bus, a MIG slice): not offered
                log.warning("GPU %d left out: %s", index, exc)
                continue
            found.append(gpu)
        self.gpus = found
        for gpu in found:
            log.info("GPU %d: %s (%s, %.0f GiB)", gpu.index, gpu.uuid, gpu.name, gpu.memory_bytes / 2**30)
        return found

    def usage(self, uuids: list[str]) -> tuple[int, float] | None:
        """Memory used (bytes, summed) and utilization (percent, averaged) of these GPUs, or None."""
        if not self._open or not uuids:
            return None
        try:
            memory, utilization = 0, 0.0
            for uuid in uuids:
                handle = self._nvml.nvmlDeviceGetHandleByUUID(uuid.encode())
                memory += int(self._nvml.nvmlDeviceGetMemoryInfo(handle).used)
                utilization += float(self._nvml.nvmlDeviceGetUtilizationRates(handle).gpu)
            return memory, utilization / len(uuids)
        except Exception as exc:  # a GPU that fell off the bus: its figures are unknown, not an error
            log.warning("GPU figures unavailable: %s", exc)
            return None

    def close(self) -> None:
        if self._open:
            self._open = False
            try:
                self._nvml.nvmlShutdown()
            except Exception as exc:  # shutting down anyway
                log.warning("NVML shutdown: %s", exc)
