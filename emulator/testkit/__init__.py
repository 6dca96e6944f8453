"""The image developers' kit: CANFAR sessions of an image in its own pytest suite (see plugin.py).

Its names load on first use: pytest imports the plugin in every run where this package is installed."""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "ContractBroken": "session",
    "ExecResult": "session",
    "SkahaError": "session",
    "SkahaSession": "session",
    "Launch": "options",
}
__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
