"""GPU inventory through NVML (nvidia-ml-py). No NVML, no GPUs: the gpus option list is then empty."""

from __future__ import annotations

import logging
from types import ModuleType

log = logging.getLogger("emulator.gpus")


def _nvml() -> ModuleType | None:
    try:
        import pynvml
    except ImportError:
        return None
    return pynvml  # type: ignore[no-any-return]


def discover(nvml: ModuleType | None = None) -> list[str]:
    """The UUIDs of this machine's GPUs, in index order (Docker's device_ids accept them)."""
    nvml = nvml or _nvml()
    if nvml is None:
        return []
    try:
        nvml.nvmlInit()
    except Exception as exc:  # NVMLError when there is no driver; any failure means no usable GPU
        log.info("no GPUs: %s", exc)
        return []
    try:
        found = []
        for index in range(nvml.nvmlDeviceGetCount()):
            uuid = nvml.nvmlDeviceGetUUID(nvml.nvmlDeviceGetHandleByIndex(index))
            found.append(uuid.decode() if isinstance(uuid, bytes) else str(uuid))
        return found
    finally:
        nvml.nvmlShutdown()
