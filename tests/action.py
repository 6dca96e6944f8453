"""skaha-emulator's GitHub Action as its action.yml declares it, for the tests that hold the two together."""

from __future__ import annotations

from typing import Any

import yaml

from emulator.scaffold.action import ACTION_FOLDER
from emulator.settings import REPO_ROOT

ACTION = REPO_ROOT / ACTION_FOLDER


def action() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ACTION / "action.yml").read_text())
    return loaded


def script_step(declared: dict[str, Any] | None = None) -> dict[str, Any]:
    """The composite step that runs run.sh (there is one)."""
    (step,) = [s for s in (declared or action())["runs"]["steps"] if "run.sh" in s.get("run", "")]
    found: dict[str, Any] = step
    return found
