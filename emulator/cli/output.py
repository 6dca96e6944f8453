"""Shared CLI output: rich consoles, tables, a spinner, and the --json option.

The consoles are made on first use: rich costs more to import than a light command's whole request, and a
command that prints JSON, or nothing, never loads it.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar, cast

import click

if TYPE_CHECKING:
    from rich.console import Console

F = TypeVar("F", bound=Callable[..., Any])


class _OnFirstUse:
    """Stands for a rich Console, made with these options when it is first used."""

    def __init__(self, **options: Any) -> None:
        self._options = options
        self._console: Console | None = None

    def made(self) -> Console:
        if self._console is None:
            from rich.console import Console

            self._console = Console(**self._options)
        return self._console

    def __getattr__(self, name: str) -> Any:
        return getattr(self.made(), name)


# Piped output keeps whole lines (no folding at 80 columns) so scripts can parse tables.
console = cast("Console", _OnFirstUse(highlight=False, width=None if sys.stdout.isatty() else 400))
console_err = cast("Console", _OnFirstUse(stderr=True, highlight=False))


def real(console: Console) -> Console:
    """The rich Console itself, for rich's own classes that take one (Progress, Live)."""
    return console.made() if isinstance(console, _OnFirstUse) else console


def json_option(fn: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")(fn)


def print_json(document: Any) -> None:
    click.echo(json.dumps(document, indent=2))


def table(columns: list[str], rows: list[list[str]]) -> None:
    """A table: rich's on a terminal; piped, plain columns, whole lines, as `docker ps` prints them (and
    without loading rich, which costs a light command more than its request)."""
    if not sys.stdout.isatty():
        widths = [max(len(cell) for cell in column) for column in zip(columns, *rows, strict=True)]
        for line in (columns, *rows):
            click.echo("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip())
        return
    from rich.table import Table

    grid = Table(show_header=True, header_style="bold", box=None, pad_edge=False)
    for column in columns:
        grid.add_column(column, overflow="fold")
    for row in rows:
        grid.add_row(*row)
    console.print(grid)
