"""init-image: start a CANFAR image project that tests itself."""

from __future__ import annotations

from pathlib import Path

import click

from emulator.cli.output import console
from emulator.scaffold import EMULATOR_REQUIREMENT, TYPES, init_image


@click.command("init-image")
@click.argument("session_type", metavar="TYPE", type=click.Choice(TYPES))
@click.argument("directory", metavar="DIR", type=click.Path(path_type=Path))
@click.option("--image", help="The image's name and tag (default: DIR's name, tag dev).")
@click.option(
    "--emulator",
    default=EMULATOR_REQUIREMENT,
    show_default=True,
    help="What the CI jobs pip-install for skaha-emulator (a requirement, a git URL, a wheel).",
)
def init_image_command(session_type: str, directory: Path, image: str | None, emulator: str) -> None:
    """Write a new image project for a session type: Dockerfile, README, tests and CI jobs.

    \b
    Its tests pass out of the box:
      emulate init-image notebook my-notebook && cd my-notebook
      docker build -t my-notebook:dev . && pytest
    """
    written = init_image(session_type, directory, image, emulator)
    console.print(f"wrote {directory}/: " + ", ".join(str(p) for p in written), highlight=False)


COMMANDS = [init_image_command]
