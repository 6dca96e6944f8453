"""doctor: is this machine ready for the emulator? Each check with its fix; exit 0 only when a launch will work."""

from __future__ import annotations

from pathlib import Path

import click
from rich.markup import escape
from rich.table import Table

from emulator.cli.context import pass_settings
from emulator.cli.output import console, console_err, json_option, print_json
from emulator.settings import Settings

STYLE = {"ok": "green", "warn": "yellow", "fail": "bold red"}


@click.command()
@click.option(
    "--bundle",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    metavar="FILE",
    help="Check for the images this workshop bundle holds (default: the profiles' default images).",
)
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    default=None,
    help="The port `emulate up --port` will be given (default 8080).",
)
@json_option
@pass_settings
def doctor(settings: Settings, bundle: Path | None, port: int | None, as_json: bool) -> None:
    """Check this machine for the emulator: the engine, limits, user namespaces, the port, disk, the
    package indexes, SELinux, GPUs and images, each with its fix. Exit code 0 when a launch will work
    (warnings allowed), 1 otherwise.

    \b
    Example:
      emulate doctor                      # the week before the workshop
      emulate doctor --bundle workshop.bundle --json
    """
    from emulator.host.doctor import as_documents, launch_will_work, run_checks

    if port is not None:
        settings = settings.model_copy(update={"port": port})
    if as_json:
        findings = run_checks(settings, bundle)
        print_json(as_documents(findings))
    else:
        with console_err.status("checking this machine"):
            findings = run_checks(settings, bundle)
        grid = Table(show_header=True, header_style="bold", box=None, pad_edge=False)
        for column in ("CHECK", "STATUS", "DETAIL", "FIX"):
            grid.add_column(column, overflow="fold")
        for f in findings:
            status = f"[{STYLE[f.status]}]{f.status}[/]"
            grid.add_row(f.check, status, escape(f.detail), escape(f.fix))
        console.print(grid)
    if not launch_will_work(findings):
        if not as_json:
            console_err.print("[red]not ready:[/red] fix the lines marked fail, then run `emulate doctor` again")
        raise SystemExit(1)


COMMANDS = [doctor]
