"""testkit: what the image developers' pytest plugin (skaha_session) leaves behind."""

from __future__ import annotations

import click

from emulator.cli.output import console


@click.group()
def testkit() -> None:
    """The pytest plugin's sessions (`skaha_session`): see README, "Test your image"."""


@testkit.command()
def clean() -> None:
    """Remove what ended test runs left: sessions kept with --skaha-keep, those of a crashed run, and the
    sessions kept for reuse (reuse=True) with their network and gateway.

    Runs still going are never touched, nor the kept sessions' /arc. Sessions kept on a platform (attached
    mode) are removed from the one `emulate` talks to, when it is up."""
    from emulator.runtime.docker import connect, docker_errors
    from emulator.testkit import leftovers
    from emulator.testkit.reuse import clean_home

    with docker_errors():
        client = connect()
        removed = leftovers.sweep(client, include_kept=True)
        kept, left_alone = clean_home(client)
    removed += kept + _clean_platform()
    console.print(f"removed {len(removed)}: {', '.join(removed)}" if removed else "nothing to remove")
    if left_alone:
        console.print(left_alone)


def _clean_platform() -> list[str]:
    """Your sessions the kit kept on the platform this CLI talks to (none when it is not up)."""
    from emulator.client.http import EmulatorClient
    from emulator.errors import EmulatorError
    from emulator.layout import Layout
    from emulator.testkit.attached import KEPT_NAME

    try:
        api = EmulatorClient(Layout.from_environment())
        kept = [found for found in api.sessions() if KEPT_NAME.match(str(found.get("name", "")))]
        for found in kept:
            api.delete(found["id"])
    except EmulatorError:  # no platform here, or none answering: nothing of it to clean
        return []
    return [f"{found['name']} ({found['id']})" for found in kept]


COMMANDS = [testkit]
