"""Shared CLI output: rich consoles, tables, a spinner, and the --json option."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.table import Table

# Piped output keeps whole lines (no folding at 80 columns) so scripts can parse tables.
console = Console(highlight=False, width=None if sys.stdout.isatty() else 400)
console_err = Console(stderr=True, highlight=False)

F = TypeVar("F", bound=Callable[..., Any])


def json_option(fn: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")(fn)


def print_json(document: Any) -> None:
    click.echo(json.dumps(document, indent=2))


def table(columns: list[str], rows: list[list[str]]) -> None:
    grid = Table(show_header=True, header_style="bold", box=None, pad_edge=False)
    for column in columns:
        grid.add_column(column, overflow="fold")
    for row in rows:
        grid.add_row(*row)
    console.print(grid)
