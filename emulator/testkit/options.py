"""A launch's options: light enough for the pytest plugin to import in every test run."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from emulator import __version__

if TYPE_CHECKING:
    from emulator.profiles import Profile


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


def reuse_slot(image: str, session_type: str, options: Launch) -> str:
    """What a test asked for, whatever it is made of: a kept session of this slot is adopted or replaced."""
    return hashlib.sha256(json.dumps([image, session_type, options.name]).encode()).hexdigest()[:32]


def reuse_key(image_id: str, session_type: str, options: Launch, profile: Profile | None, where: str) -> str:
    """What a session was made of: any change launches a new one (`where`: its /arc, or its platform)."""
    made_of = {
        "image": image_id,
        "type": session_type,
        "launch": {**dataclasses.asdict(options), "args": list(options.args or []), "timeout": None},
        "profile": profile.model_dump(mode="json") if profile is not None else None,
        "where": where,
        "kit": __version__,
    }
    return hashlib.sha256(json.dumps(made_of, sort_keys=True, default=str).encode()).hexdigest()[:32]
