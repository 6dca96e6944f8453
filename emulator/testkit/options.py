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

    @property
    def env_entries(self) -> list[str]:
        """`env` as skaha's repeated env parameter carries it (KEY=value)."""
        return [f"{key}={value}" for key, value in (self.env or {}).items()]

    @property
    def args_line(self) -> str | None:
        """`args` as skaha's args parameter carries them (one string, which skaha splits on single spaces)."""
        return " ".join(self.args) if self.args else None


# The default of every kit's `launch`: frozen, so one shared instance is safe as a default argument.
DEFAULT_LAUNCH = Launch()
