"""images build | ls."""

from __future__ import annotations

import click

from emulator.cli.context import pass_settings
from emulator.cli.output import console, console_err, json_option, print_json, table
from emulator.client.http import EmulatorClient
from emulator.settings import Settings


@click.group()
def images() -> None:
    """Build and list session images."""


@images.command()
@click.argument("names", nargs=-1, metavar="[NAME...]")
@pass_settings
def build(settings: Settings, names: tuple[str, ...]) -> None:
    """Build image recipes (default: all that need no registry beyond Debian's and PyPI).

    The base is made offline (mmdebstrap, or debootstrap as root) when no registry answers; carta and firefly need
    Docker Hub and are built only when named.

    \b
    Example:
      emulate images build notebook
      EMULATE_EXTRA_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt emulate images build
    """
    from emulator.host import images as recipes
    from emulator.runtime.docker import connect

    client = connect()
    wanted = list(names) or recipes.default_recipes(settings)
    with console_err.status("building") as status:

        def say(line: str) -> None:
            status.update(line)
            if line.startswith(("building", "trusting", "pulling")) or "offline" in line:
                console_err.print(line)

        built = recipes.build(settings, wanted, say, client)
    console.print(f"built {', '.join(built)}")


@images.command(name="tag")
@click.argument("source", metavar="LOCAL")
@click.argument("target", metavar="NAME")
def tag_(source: str, target: str) -> None:
    """Give a local image another name, such as a CANFAR one, so handouts' commands run unchanged.

    \b
    Example:
      emulate images tag skaha-emulator/astro-notebook:latest images.canfar.net/skaha/astroml:latest
      canfar launch notebook skaha/astroml:latest
    """
    from emulator.host import images as recipes

    recipes.tag(source, target)
    console.print(f"{target} now names {source}; launch it: emulate launch notebook --image {target}")


@images.command(name="ls")
@click.option("--type", "session_type", default=None, help="Only images for this session type.")
@json_option
@pass_settings
def ls(settings: Settings, session_type: str | None, as_json: bool) -> None:
    """List the images the platform offers (GET /image)."""
    listing = EmulatorClient(settings.layout).images(session_type)
    if as_json:
        print_json(listing)
        return
    table(["IMAGE", "TYPES", "DIGEST"], [[i["id"], ",".join(i["types"]), i["digest"][:19]] for i in listing])


COMMANDS = [images]
