"""A launch's options: light enough for the pytest plugin to import in every test run."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Launch:
    """What a test may ask of a launch beside the image and type: skaha's launch parameters (cmd, args and
    env are for headless jobs), the session's name, and how long to wait for it (default: as the platform)."""

    cores: int | None = None
    ram: int | None = None
    env: dict[str, str] | None = None
    cmd: str | None = None
    args: Sequence[str] | None = None
    name: str = "test"
    timeout: float | None = None


# The default of every kit's `launch`: frozen, so one shared instance is safe as a default argument.
DEFAULT_LAUNCH = Launch()
