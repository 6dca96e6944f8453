"""usage: what ended sessions used, per user and type, from the admin API (over HTTP, with an admin's token)."""

from __future__ import annotations

from typing import Any

import click

from emulator.cli.context import pass_layout
from emulator.cli.output import console, json_option, print_json, table
from emulator.layout import Layout

FIGURES = ("sessions", "session_hours", "core_hours", "ram_gb_hours", "gpu_hours")


def _cells(line: dict[str, Any], type_shown: str) -> list[str]:
    hours = [f"{line[name]:.2f}" for name in FIGURES[1:]]
    return [line["user"], type_shown, str(line["sessions"]), *hours]


def _rows(document: dict[str, Any]) -> list[list[str]]:
    """Each user's lines by type, then their total (when they used more than one type)."""
    totals = {line["user"]: line for line in document["totals"]}
    rows: list[list[str]] = []
    for user, total in totals.items():
        mine = [line for line in document["usage"] if line["user"] == user]
        rows += [_cells(line, line["type"]) for line in mine]
        if len(mine) > 1:
            rows.append(_cells(total, "(all)"))
    return rows


@click.command()
@click.option("--since", metavar="DATE", help="Count only use from this day (YYYY-MM-DD, UTC) or ISO time on.")
@click.option("--csv", "as_csv", is_flag=True, help="Print CSV (one line per user and type, then each user's totals).")
@json_option
@pass_layout
def usage(layout: Layout, since: str | None, as_csv: bool, as_json: bool) -> None:
    """Session-hours and core-hours per user and session type, from the sessions that ended (admins only).

    \b
    It asks with the first admin's token in the users file (EMULATE_TOKEN: another admin's).
    Example:
      emulate usage --since 2026-03-01
      emulate usage --csv > usage.csv
    """
    from emulator.client.http import admin_client

    if as_csv and as_json:
        raise click.UsageError("give --csv or --json, not both")
    client = admin_client(layout)
    if as_csv:
        click.echo(client.usage(since, as_csv=True), nl=False)
        return
    document = client.usage(since)
    if as_json:
        print_json(document)
        return
    if not document["usage"]:
        console.print("no session has ended" + (f" since {document['since']}" if document["since"] else ""))
        return
    table(["USER", "TYPE", "SESSIONS", "SESSION-H", "CORE-H", "RAM-GB-H", "GPU-H"], _rows(document))


COMMANDS = [usage]
