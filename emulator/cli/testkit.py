"""testkit: what the image developers' pytest plugin (skaha_session) leaves behind."""

from __future__ import annotations

import click

from emulator.cli.output import console


@click.group()
def testkit() -> None:
    """The pytest plugin's sessions (`skaha_session`): see README, "Test your image"."""


@testkit.command()
def clean() -> None:
    """Remove what ended test runs left: sessions kept with --skaha-keep, and those of a crashed run.

    Runs still going are never touched."""
    from emulator.runtime.docker import connect, docker_errors
    from emulator.testkit import leftovers

    with docker_errors():
        removed = leftovers.sweep(connect(), include_kept=True)
    console.print(f"removed {len(removed)}: {', '.join(removed)}" if removed else "nothing to remove")


COMMANDS = [testkit]
