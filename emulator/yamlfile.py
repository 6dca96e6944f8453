"""Read a YAML file into a pydantic model, with errors that name the file and every bad field."""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from emulator.errors import ConfigError

M = TypeVar("M", bound=BaseModel)


def read_model(path: Path, model: type[M], what: str, missing_hint: str = "") -> M:
    """`what` names the file in messages ("profile", "users file"); `missing_hint` follows "does not exist"."""
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{what} {path} does not exist{missing_hint}") from None
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{what} {path} cannot be read: {exc}") from exc
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or '(top)'}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"{what} {path} is invalid: {problems}") from exc
