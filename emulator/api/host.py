"""What the whole machine uses now, for view=stats (psutil reads the host's /proc even from the service's
container)."""

from __future__ import annotations

import psutil

from emulator.core.models import GIB

SAMPLE_SECONDS = 0.1  # long enough for a figure of now; read on a worker thread


def usage_now() -> tuple[float, float]:
    """Cores busy over the next SAMPLE_SECONDS, and GB of memory in use (not free for new work)."""
    busy = psutil.cpu_percent(interval=SAMPLE_SECONDS) / 100 * (psutil.cpu_count() or 1)
    memory = psutil.virtual_memory()
    return busy, (memory.total - memory.available) / GIB
