"""The machine sessions run on: what it offers them (measured once, at service start), and what it uses now,
for view=stats (psutil reads the host's /proc even from the service's container)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import psutil

from emulator.core.models import GIB, HostCapacity, HostFacts
from emulator.core.policy import resource_context
from emulator.settings import Settings

if TYPE_CHECKING:  # types only: view=stats reads usage_now without the engine's SDK
    from emulator.runtime import gpus
    from emulator.runtime.docker import DockerRuntime

log = logging.getLogger(__name__)

SAMPLE_SECONDS = 0.1  # long enough for a figure of now; read on a worker thread


def usage_now() -> tuple[float, float]:
    """Cores busy over the next SAMPLE_SECONDS, and GB of memory in use (not free for new work)."""
    busy = psutil.cpu_percent(interval=SAMPLE_SECONDS) / 100 * (psutil.cpu_count() or 1)
    memory = psutil.virtual_memory()
    return busy, (memory.total - memory.available) / GIB


async def host_facts(settings: Settings, runtime: DockerRuntime, nvml: gpus.Nvml) -> HostFacts:
    """What sessions may be given: the cores, RAM and GPUs of this machine or, on a swarm, of its machines.
    Opens `nvml` (the caller closes it when the service stops: a GPU's figures are read through it)."""
    devices, gpu_note = _gpus(settings, runtime, nvml)
    if settings.orchestrator == "swarm":
        return await _swarm_facts(runtime, gpu_note)
    capacity = HostCapacity(cores=psutil.cpu_count() or 1, memory_gb=psutil.virtual_memory().total / GIB)
    context = resource_context(capacity.cores, capacity.memory_gb, len(devices))
    return HostFacts(context, capacity, devices, gpu_note)


def _gpus(settings: Settings, runtime: DockerRuntime, nvml: gpus.Nvml) -> tuple[list[str], str]:
    """The GPUs sessions can be given on this machine, and why there are none, when there are none."""
    found = nvml.open()
    if settings.orchestrator == "swarm":  # Swarm hands out the GPUs its machines advertise
        return [], "no machine of the swarm advertises an NVIDIA GPU (dockerd --node-generic-resource)"
    devices = [gpu.uuid for gpu in found]
    if devices and (refused := runtime.gpu_access(found)):  # neither the NVIDIA runtime nor CDI takes them
        log.warning("GPU requests are refused: %s", refused)
        return [], refused
    return devices, nvml.absent_because


async def _swarm_facts(runtime: DockerRuntime, gpu_note: str) -> HostFacts:
    """What a session may ask for: what the largest machine has; what there is: all of them."""
    nodes = [n for n in await runtime.nodes() if n.state == "ready" and n.available] or await runtime.nodes()
    largest = max(nodes, key=lambda n: (n.memory_bytes, n.cores))
    context = resource_context(int(largest.cores), largest.memory_bytes / GIB, max(n.gpus for n in nodes))
    capacity = HostCapacity(
        cores=int(sum(n.cores for n in nodes)),
        memory_gb=sum(n.memory_bytes for n in nodes) / GIB,
        gpus=sum(n.gpus for n in nodes),
    )
    return HostFacts(context, capacity, [], gpu_note)
