"""This machine's NVIDIA GPUs through NVML (nvidia-ml-py's `pynvml`), held open while the service runs.

No NVML library, no driver, or no GPU: no GPUs (and the reason is kept, for the error a GPU request
gets). The figures of a GPU (memory used, utilization) are read when asked for; a session's GPUs
are its own, so a GPU's figures are that session's.

Engines hand GPUs over through the NVIDIA container runtime or through CDI (the Container Device
Interface: `nvidia-ctk cdi generate` writes a spec naming each GPU `nvidia.com/gpu=<index>`, `=<uuid>`
and `=all`, which Podman and Docker 25+ read). `cdi_device_names` reads those specs as the engine does.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml

log = logging.getLogger(__name__)

CDI_GPU_KIND = "nvidia.com/gpu"
# Where engines look for CDI specs when they do not say (the CDI library's defaults; Docker lists its own).
DEFAULT_CDI_DIRS = ("/etc/cdi", "/var/run/cdi")
_SPEC_SUFFIXES = (".yaml", ".yml", ".json")


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
    return pynvml  # type: ignore[no-any-return]  # pynvml ships no types: the module is Any


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


def _read_spec(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
        spec = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (OSError, ValueError, yaml.YAMLError) as exc:  # the engine skips a broken spec too
        log.warning("CDI spec %s left out: %s", path, exc)
        return {}
    return spec if isinstance(spec, dict) else {}


def cdi_device_names(folders: Iterable[str], kind: str = CDI_GPU_KIND) -> set[str]:
    """The device names the CDI specs in these folders give `kind` (e.g. "0", "GPU-<uuid>", "all")."""
    names: set[str] = set()
    for folder in folders:
        path = Path(folder)
        if not path.is_dir():
            continue
        for spec_file in sorted(p for p in path.iterdir() if p.suffix in _SPEC_SUFFIXES):
            spec = _read_spec(spec_file)
            if spec.get("kind") != kind:
                continue
            for device in spec.get("devices") or []:
                if isinstance(device, dict) and device.get("name"):
                    names.add(str(device["name"]))
    return names


def cdi_names(gpus: Iterable[Gpu], names: set[str], kind: str = CDI_GPU_KIND) -> dict[str, str]:
    """Each GPU's fully qualified CDI name by its uuid: by uuid where the spec names it so (it stays right when
    GPUs are renumbered), else by index. A GPU the specs do not name is left out."""
    found = {}
    for gpu in gpus:
        name = gpu.uuid if gpu.uuid in names else str(gpu.index) if str(gpu.index) in names else None
        if name is not None:
            found[gpu.uuid] = f"{kind}={name}"
    return found
