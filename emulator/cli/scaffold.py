"""init-image: start a CANFAR image project that tests itself."""

from __future__ import annotations

from pathlib import Path

import click

from emulator.cli.output import console, console_err
from emulator.scaffold import EMULATOR_REQUIREMENT, TYPES, init_image, installed_from
from emulator.scaffold.action import PLACEHOLDER, action_reference


@click.command("init-image")
@click.argument("session_type", metavar="TYPE", type=click.Choice(TYPES))
@click.argument("directory", metavar="DIR", type=click.Path(path_type=Path))
@click.option("--image", help="The image's name and tag (default: DIR's name, tag dev).")
@click.option(
    "--emulator",
    help="Where CI takes skaha-emulator from: a requirement such as 'skaha-emulator @ git+https://...' (the "
    "GitLab job pip-installs it; the GitHub workflow uses the action of that repository at that ref, when it is "
    "on GitHub) (default: the git repository this one came from, else 'skaha-emulator').",
)
def init_image_command(session_type: str, directory: Path, image: str | None, emulator: str | None) -> None:
    """Write a new image project for a session type: Dockerfile, README, tests and CI jobs.

    \b
    Its tests pass out of the box:
      emulate init-image notebook my-notebook && cd my-notebook
      docker build -t my-notebook:dev . && pytest
    and `emulate dev .` runs it, rebuilt and relaunched on every save.
    """
    source = emulator or installed_from()
    written = init_image(session_type, directory, image, source or EMULATOR_REQUIREMENT)
    console.print(f"wrote {directory}/: " + ", ".join(str(p) for p in written), highlight=False)
    if source is None:
        console_err.print(
            f"note: its GitLab job installs {EMULATOR_REQUIREMENT!r} from the package index; where your CI should "
            "take it from a repository instead, edit it or use --emulator 'skaha-emulator @ git+URL'",
            highlight=False,
        )
    if action_reference(source or "") is None:
        console_err.print(
            f"note: .github/workflows/image.yml uses {PLACEHOLDER}: put skaha-emulator's GitHub repository and a "
            "tag or commit there (or use --emulator 'skaha-emulator @ git+https://github.com/OWNER/REPO@REF')",
            highlight=False,
        )


COMMANDS = [init_image_command]
