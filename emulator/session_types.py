"""skaha's session types, in a module of their own (standard library only: the CLI names them
without loading the profile models)."""

from __future__ import annotations

import enum


class SessionType(enum.StrEnum):
    """skaha's session types (SessionType.java); what each one does is its profile's data."""

    NOTEBOOK = "notebook"
    DESKTOP = "desktop"
    CARTA = "carta"
    CONTRIBUTED = "contributed"
    FIREFLY = "firefly"
    HEADLESS = "headless"
    DESKTOP_APP = "desktop-app"


SESSION_TYPES = tuple(t.value for t in SessionType)
