"""What every command is handed: the instance's file layout at once, its full settings on demand.

Session commands (ps, info, logs...) need only the layout, so they never load the settings model;
the others ask for the settings, read from the environment the first time they are asked for.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Concatenate, ParamSpec, TypeVar

import click

from emulator.layout import Layout

if TYPE_CHECKING:
    from emulator.settings import Settings

P = ParamSpec("P")
R = TypeVar("R")


@dataclass
class CliContext:
    instance: str | None
    _layout: Layout | None = field(default=None, repr=False)
    _settings: Settings | None = field(default=None, repr=False)

    @property
    def layout(self) -> Layout:
        if self._layout is None:
            self._layout = self.settings.layout if self._settings else Layout.from_environment(self.instance)
        return self._layout

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            from emulator.settings import load_settings

            self._settings = load_settings(instance=self.instance)
        return self._settings


def _context() -> CliContext:
    found = click.get_current_context().find_object(CliContext)
    assert found is not None, "emulate's group sets the context"
    return found


def pass_settings(command: Callable[Concatenate[Settings, P], R]) -> Callable[P, R]:
    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        return command(_context().settings, *args, **kwargs)

    return wrapper


def pass_layout(command: Callable[Concatenate[Layout, P], R]) -> Callable[P, R]:
    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        return command(_context().layout, *args, **kwargs)

    return wrapper
